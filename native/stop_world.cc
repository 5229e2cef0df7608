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

// A thread that has not stopped this long after being interrupted is in an uninterruptible
// sleep (disk or network I/O, a vfork parent): we give up rather than wait on it.
constexpr uint64_t kStopTimeoutNs = 3000ull * 1000 * 1000;
// PTRACE_INTERRUPT is repeated at this interval while a thread has not stopped.
constexpr uint64_t kNudgeIntervalNs = 100ull * 1000 * 1000;
// A thread that exited while traced becomes a zombie only we can reap; it gets this long.
constexpr uint64_t kReapTimeoutNs = 1000ull * 1000 * 1000;

bool contains(const std::vector<pid_t>& list, pid_t tid) {
  return std::find(list.begin(), list.end(), tid) != list.end();
}

void pauseBriefly(long ns) {
  // Also yields the CPU to the threads we wait for (we may be running SCHED_FIFO).
  struct timespec pause = {0, ns};
  ::nanosleep(&pause, nullptr);
}

enum class Poll { kNothing, kStopped, kExited };

Poll pollThread(pid_t tid, int& status) {
  for (;;) {
    const pid_t got = ::waitpid(tid, &status, WNOHANG | __WALL);
    if (got == 0) return Poll::kNothing;
    if (got == tid) return WIFSTOPPED(status) ? Poll::kStopped : Poll::kExited;
    if (errno != EINTR) return Poll::kExited;  // ECHILD: reaped, or no longer ours
  }
}

bool isGone(char state) { return state == '?' || state == 'Z' || state == 'X'; }

Status tracedFailure(pid_t tid, pid_t tracer) {
  std::string hint = "process " + std::to_string(tracer) +
                     " is tracing it (a debugger, strace, or another timeskew call); detach it "
                     "or wait for it to finish";
  return failure("EBUSY", EBUSY, "ptrace", hint.c_str(), "thread %d is already traced by %d", tid,
                 tracer);
}

Status seizeFailure(pid_t pid, pid_t tid, int error) {
  const pid_t tracer = readTracer(pid, tid);
  if (tracer > 0) return tracedFailure(tid, tracer);
  if (findLiveThread(pid) == 0) {
    return failure("ESRCH", ESRCH, "ptrace", "the process exited", "process %d exited", pid);
  }
  return systemFailure(error, "ptrace", "PTRACE_SEIZE");
}

// PTRACE_SEIZE answers EPERM, not ESRCH, for a thread that is exiting (or the dead leader of a
// process whose other threads live on): such a thread is simply not there to stop.
bool exitedMeanwhile(pid_t pid, pid_t tid) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (isGone(readThreadState(pid, tid))) return true;
    pauseBriefly(1000 * 1000);
  }
  return false;
}

}  // namespace

void StoppedProcess::forget(pid_t tid) {
  attached_.erase(std::remove(attached_.begin(), attached_.end(), tid), attached_.end());
  threads_.erase(std::remove_if(threads_.begin(), threads_.end(),
                                [tid](const StoppedThread& t) { return t.tid == tid; }),
                 threads_.end());
}

Status StoppedProcess::seizeBatch(const std::vector<pid_t>& batch, std::vector<pid_t>& seized) {
  for (pid_t tid : batch) {
    bool attached = false;
    bool gone = false;
    int error = 0;
    // EPERM also comes from a thread that is exiting, or from a tracer (another timeskew call)
    // that let go between its attach and our look at TracerPid: look again, a few times.
    for (int attempt = 0; attempt < 5 && !attached && !gone; ++attempt) {
      attached = ::ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) == 0;
      if (attached) break;
      error = errno;
      if (error == ESRCH) {
        gone = true;  // the thread exited in the meantime
      } else if (error != EPERM) {
        break;
      } else if (const pid_t tracer = readTracer(pid_, tid); tracer > 0) {
        return tracedFailure(tid, tracer);
      } else if (exitedMeanwhile(pid_, tid)) {
        gone = true;
      }
    }
    if (gone) continue;
    if (!attached) return seizeFailure(pid_, tid, error);
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

// Records one wait status of a thread we traced (0: it is gone).
void StoppedProcess::noteStatus(pid_t tid, int status) {
  if (firstStopNs_ == 0) firstStopNs_ = monotonicNowNs();
  if (!WIFSTOPPED(status)) {
    forget(tid);  // exited: nothing to release
    return;
  }
  if ((status >> 16) == 0) {
    for (StoppedThread& thread : threads_) {
      if (thread.tid == tid) thread.pendingSignal = WSTOPSIG(status);
    }
  }
}

Status StoppedProcess::awaitStops(const std::vector<pid_t>& seized) {
  // Threads reach their stop roughly in the order they were interrupted: wait on the first one
  // not yet stopped, and sweep the others only now and then. Polling every thread in every round
  // cost tens of thousands of system calls for 1,000 threads, and the CPU they need to stop.
  std::vector<char> done(seized.size(), 0);
  size_t remaining = seized.size();
  size_t front = 0;
  const uint64_t start = monotonicNowNs();
  uint64_t nextNudge = start + kNudgeIntervalNs;
  long idleNs = 0;
  for (int round = 0; remaining > 0; ++round) {
    bool progressed = false;
    auto take = [&](size_t i) {
      int status = 0;
      const Poll poll = pollThread(seized[i], status);
      if (poll == Poll::kNothing) return false;
      noteStatus(seized[i], poll == Poll::kStopped ? status : 0);
      done[i] = 1;
      --remaining;
      progressed = true;
      return true;
    };
    while (front < seized.size() && (done[front] || take(front))) ++front;
    if (remaining == 0) break;
    if (round % 8 == 7) {
      for (size_t i = front + 1; i < seized.size(); ++i) {
        if (!done[i]) take(i);
      }
    }
    if (progressed) {
      idleNs = 0;
      continue;
    }
    const uint64_t now = monotonicNowNs();
    if (now - start > kStopTimeoutNs) {
      const pid_t tid = seized[front];
      return failure("EBUSY", EBUSY, nullptr,
                     "it is in an uninterruptible sleep (state D: disk or network I/O, or a "
                     "vfork parent); try again when it is not",
                     "thread %d of process %d did not stop within 3 s (state %c)", tid, pid_,
                     readThreadState(pid_, tid));
    }
    if (now > nextNudge) {
      for (size_t i = front; i < seized.size(); ++i) {
        if (!done[i]) ::ptrace(PTRACE_INTERRUPT, seized[i], nullptr, nullptr);
      }
      // A process being killed: threads we already stopped are woken to exit, and the kernel
      // reports a dying leader only once we have reaped them.
      const std::vector<pid_t> stopped = attached_;
      for (pid_t tid : stopped) {
        const auto at = std::find(seized.begin(), seized.end(), tid);
        if (at != seized.end() && !done[at - seized.begin()]) continue;
        int status = 0;
        if (pollThread(tid, status) == Poll::kExited) forget(tid);
      }
      nextNudge = now + kNudgeIntervalNs;
    }
    // Nothing new: sleep a little longer each time (the threads need the CPU to stop).
    idleNs = std::min<long>(idleNs == 0 ? 5 * 1000 : idleNs * 2, 100 * 1000);
    pauseBriefly(idleNs);
  }
  return Status::success();
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
  firstStopNs_ = releasedNs_ = maxThreadPauseNs_ = 0;
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
    Status seizedStatus = seizeBatch(batch, seized);
    Status stoppedStatus = awaitStops(seized);
    if (!seizedStatus.ok || !stoppedStatus.ok) {
      release();
      return seizedStatus.ok ? stoppedStatus : seizedStatus;
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
    Poll poll = Poll::kNothing;
    const uint64_t deadline = monotonicNowNs() + kStopTimeoutNs;
    while ((poll = pollThread(thread.tid, status)) == Poll::kNothing) {
      if (monotonicNowNs() > deadline) {
        ::ptrace(PTRACE_INTERRUPT, thread.tid, nullptr, nullptr);
      }
      pauseBriefly(10 * 1000);
    }
    if (poll == Poll::kExited) {
      forget(thread.tid);
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

void StoppedProcess::reap(std::vector<pid_t> exited) {
  const uint64_t deadline = monotonicNowNs() + kReapTimeoutNs;
  while (!exited.empty() && monotonicNowNs() < deadline) {
    std::vector<pid_t> still;
    for (pid_t tid : exited) {
      int status = 0;
      if (pollThread(tid, status) == Poll::kNothing) still.push_back(tid);
    }
    exited.swap(still);
    if (!exited.empty()) pauseBriefly(100 * 1000);
  }
}

void StoppedProcess::release() {
  if (attached_.empty()) {
    restoreScheduling();
    return;
  }
  for (const StoppedThread& thread : threads_) {
    if (thread.pendingSignal == 0) arch::rewindInterruptedWait(pid_, thread.tid);
  }
  // One tight burst: released threads that spin on the clock compete with us for the CPU.
  std::vector<pid_t> exited;
  for (pid_t tid : attached_) {
    int signal = 0;
    for (const StoppedThread& thread : threads_) {
      if (thread.tid == tid) signal = thread.pendingSignal;
    }
    if (::ptrace(PTRACE_DETACH, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(signal))) !=
        0) {
      // Killed while stopped (SIGKILL wakes a traced thread): it exits, and waits for us.
      exited.push_back(tid);
    }
  }
  releasedNs_ = monotonicNowNs();
  for (const StoppedThread& thread : threads_) {
    if (thread.interruptedAtNs != 0) {
      maxThreadPauseNs_ = std::max(maxThreadPauseNs_, releasedNs_ - thread.interruptedAtNs);
    }
  }
  attached_.clear();
  restoreScheduling();
  reap(std::move(exited));
}

}  // namespace timeskew
