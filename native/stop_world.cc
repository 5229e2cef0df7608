#include "stop_world.h"

#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "arch.h"

namespace timeskew {

uint64_t monotonicNowNs() {
  struct timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return uint64_t(now.tv_sec) * 1000000000u + uint64_t(now.tv_nsec);
}

namespace {

bool contains(const std::vector<pid_t>& list, pid_t tid) {
  return std::find(list.begin(), list.end(), tid) != list.end();
}

int waitForThread(pid_t tid, int& status) {
  for (;;) {
    pid_t got = ::waitpid(tid, &status, __WALL);
    if (got >= 0 || errno != EINTR) return got;
  }
}

Status seizeFailure(pid_t pid, pid_t tid, int error) {
  const pid_t tracer = readTracer(pid, tid);
  if (tracer > 0) {
    std::string hint = "process " + std::to_string(tracer) +
                       " is tracing it (a debugger, strace, or another timeskew call); detach it "
                       "or wait for it to finish";
    return failure("EBUSY", EBUSY, "ptrace", hint.c_str(), "thread %d is already traced by %d",
                   tid, tracer);
  }
  ProcessInfo info;
  if (!readProcessInfo(pid, info) || info.state == 'Z' || info.state == 'X') {
    return failure("ESRCH", ESRCH, "ptrace", "the process exited", "process %d exited", pid);
  }
  return systemFailure(error, "ptrace", "PTRACE_SEIZE");
}

}  // namespace

Status StoppedProcess::seizeBatch(const std::vector<pid_t>& batch, std::vector<pid_t>& seized) {
  for (pid_t tid : batch) {
    if (::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
      if (errno == ESRCH) continue;  // the thread exited in the meantime
      return seizeFailure(pid_, tid, errno);
    }
    attached_.push_back(tid);
    seized.push_back(tid);
  }
  // Interrupt the whole batch before waiting for any: waiting one by one would let the
  // still-running threads of a busy process fight us for the CPU.
  const uint64_t now = monotonicNowNs();
  for (pid_t tid : seized) ::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr);
  for (pid_t tid : seized) {
    StoppedThread thread;
    thread.tid = tid;
    thread.interruptedAtNs = now;
    threads_.push_back(thread);
  }
  return Status::success();
}

void StoppedProcess::awaitStops(const std::vector<pid_t>& seized) {
  for (pid_t tid : seized) {
    auto thread = std::find_if(threads_.begin(), threads_.end(),
                               [tid](const StoppedThread& t) { return t.tid == tid; });
    int status = 0;
    const bool stopped = waitForThread(tid, status) == tid && WIFSTOPPED(status);
    if (firstStopNs_ == 0) firstStopNs_ = monotonicNowNs();
    if (!stopped) {
      // Exited (or reaped by its real parent): nothing to release.
      attached_.erase(std::remove(attached_.begin(), attached_.end(), tid), attached_.end());
      threads_.erase(thread);
      continue;
    }
    const int event = status >> 16;
    if (event == 0) thread->pendingSignal = WSTOPSIG(status);
  }
}

// Released threads that spin on the clock compete with us for the CPU: on 2 cores, releasing
// 1,000 of them took 1.5 s without help. A real-time policy for this one thread (when we are
// allowed one) keeps them from preempting us until every thread is stopped, or released.
void StoppedProcess::boostScheduling() {
  struct sched_param saved;
  savedPolicy_ = ::sched_getscheduler(0);
  if (savedPolicy_ < 0 || ::sched_getparam(0, &saved) != 0) return;
  savedPriority_ = saved.sched_priority;
  struct sched_param boost;
  boost.sched_priority = 1;
  boosted_ = ::sched_setscheduler(0, SCHED_FIFO, &boost) == 0;
}

void StoppedProcess::restoreScheduling() {
  if (!boosted_) return;
  struct sched_param saved;
  saved.sched_priority = savedPriority_;
  ::sched_setscheduler(0, savedPolicy_, &saved);
  boosted_ = false;
}

Status StoppedProcess::stop(pid_t pid) {
  pid_ = pid;
  boostScheduling();
  std::vector<pid_t> seen;
  std::vector<pid_t> listed;
  for (;;) {
    if (!listThreads(pid, listed)) {
      release();
      return systemFailure(errno == ENOENT ? ESRCH : errno, "open", "/proc/PID/task");
    }
    std::vector<pid_t> batch;
    for (pid_t tid : listed) {
      if (!contains(seen, tid)) batch.push_back(tid);
    }
    if (batch.empty()) break;  // every thread that exists is stopped: none can create more
    seen.insert(seen.end(), batch.begin(), batch.end());
    std::vector<pid_t> seized;
    Status status = seizeBatch(batch, seized);
    awaitStops(seized);
    if (!status.ok) {
      release();
      return status;
    }
  }
  if (threads_.empty()) {
    release();
    return failure("ESRCH", ESRCH, "ptrace", "the process exited", "process %d exited", pid);
  }
  return Status::success();
}

StepOutcome StoppedProcess::stepOutOf(StoppedThread& thread, const AddressRange& range,
                                      int maxSteps) {
  if (thread.pendingSignal != 0) return StepOutcome::kSignal;
  for (int step = 0; step <= maxSteps; ++step) {
    uint64_t ip = 0;
    if (!arch::readInstructionPointer(thread.tid, ip)) return StepOutcome::kFailed;
    if (!range.contains(ip)) return StepOutcome::kOutside;
    if (step == maxSteps) break;
    if (::ptrace(PTRACE_SINGLESTEP, thread.tid, nullptr, nullptr) != 0) {
      return errno == ESRCH ? StepOutcome::kGone : StepOutcome::kFailed;
    }
    int status = 0;
    if (waitForThread(thread.tid, status) != thread.tid || !WIFSTOPPED(status)) {
      attached_.erase(std::remove(attached_.begin(), attached_.end(), thread.tid),
                      attached_.end());
      return StepOutcome::kGone;
    }
    const int event = status >> 16;
    const int signal = WSTOPSIG(status);
    if (event == 0 && signal != SIGTRAP) {
      thread.pendingSignal = signal;
      return StepOutcome::kSignal;
    }
  }
  return StepOutcome::kTooLong;
}

std::vector<StoppedProcess::RunOutcome> StoppedProcess::runUntilTrap(
    const std::vector<StoppedThread*>& threads, uint64_t timeoutNs) {
  std::vector<RunOutcome> outcomes(threads.size(), RunOutcome::kTimedOut);
  std::vector<size_t> pending;
  for (size_t i = 0; i < threads.size(); ++i) {
    if (::ptrace(PTRACE_CONT, threads[i]->tid, nullptr, nullptr) == 0) {
      pending.push_back(i);
    } else {
      outcomes[i] = RunOutcome::kGone;
    }
  }
  const uint64_t deadline = monotonicNowNs() + timeoutNs;
  // Poll: a blocking wait on one thread would hang on a thread that never traps.
  while (!pending.empty()) {
    std::vector<size_t> still;
    for (size_t i : pending) {
      StoppedThread& thread = *threads[i];
      int status = 0;
      const pid_t got = ::waitpid(thread.tid, &status, WNOHANG | __WALL);
      if (got == 0) {
        still.push_back(i);
        continue;
      }
      if (got < 0 || !WIFSTOPPED(status)) {
        attached_.erase(std::remove(attached_.begin(), attached_.end(), thread.tid),
                        attached_.end());
        outcomes[i] = RunOutcome::kGone;
        continue;
      }
      const int event = status >> 16;
      const int signal = WSTOPSIG(status);
      if (event == 0 && signal == SIGTRAP) {
        outcomes[i] = RunOutcome::kTrapped;
      } else {
        if (event == 0) thread.pendingSignal = signal;
        outcomes[i] = RunOutcome::kSignal;
      }
    }
    pending.swap(still);
    if (pending.empty()) break;
    if (monotonicNowNs() > deadline) {
      for (size_t i : pending) {
        StoppedThread& thread = *threads[i];
        ::ptrace(PTRACE_INTERRUPT, thread.tid, nullptr, nullptr);
        int status = 0;
        if (waitForThread(thread.tid, status) == thread.tid && WIFSTOPPED(status)) {
          const bool signalStop = (status >> 16) == 0;
          if (signalStop && WSTOPSIG(status) == SIGTRAP) {
            // It reached the breakpoint just as time ran out: ours, never to be delivered.
            outcomes[i] = RunOutcome::kTrapped;
            continue;
          }
          if (signalStop) thread.pendingSignal = WSTOPSIG(status);
          outcomes[i] = RunOutcome::kTimedOut;
        } else {
          outcomes[i] = RunOutcome::kGone;
        }
      }
      break;
    }
    // Yield the CPU to the threads we are waiting for (we may be running SCHED_FIFO).
    struct timespec pause = {0, 20000};
    ::nanosleep(&pause, nullptr);
  }
  return outcomes;
}

void StoppedProcess::release() {
  if (attached_.empty()) {
    restoreScheduling();
    return;
  }
  // One tight burst: released threads that spin on the clock compete with us for the CPU.
  for (pid_t tid : attached_) {
    int signal = 0;
    for (const StoppedThread& thread : threads_) {
      if (thread.tid == tid) signal = thread.pendingSignal;
    }
    ::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(signal)));
  }
  releasedNs_ = monotonicNowNs();
  for (const StoppedThread& thread : threads_) {
    if (thread.interruptedAtNs != 0) {
      maxThreadPauseNs_ = std::max(maxThreadPauseNs_, releasedNs_ - thread.interruptedAtNs);
    }
  }
  attached_.clear();
  restoreScheduling();
}

}  // namespace timeskew
