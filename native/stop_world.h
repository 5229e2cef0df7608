// Stop-the-world for one process: every thread seized (PTRACE_SEIZE, no SIGSTOP, no EXITKILL)
// and interrupted, the task list re-read until no thread appears that is not stopped. The
// destructor releases every thread on every path, so an error can never leave the target stopped.
//
// Nothing here ever blocks on one thread: stops and exits are collected by polling each thread
// with a deadline. A blocking wait on the leader of a dying process would never return (the
// kernel reports the leader only once its other threads are reaped, and we are the one who
// must reap them), and a thread in uninterruptible sleep must cost an error, not a hang.
//
// Only group-stop-like interrupt stops are used on the install, update and restore paths: if
// the process running this dies at any instant, the kernel resumes each thread as if nothing
// happened. (A single-step or breakpoint stop would leave a SIGTRAP to be delivered, and kill
// the target.)
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "proc.h"
#include "status.h"

namespace timeskew {

struct StoppedThread {
  pid_t tid = 0;
  // A signal the thread stopped with (signal-delivery-stop): handed back to it on release, so
  // that no signal is ever lost because of us.
  int pendingSignal = 0;
  uint64_t interruptedAtNs = 0;
};

enum class StepOutcome { kOutside, kGone, kSignal, kTooLong, kFailed };

class StoppedProcess {
 public:
  StoppedProcess() = default;
  StoppedProcess(const StoppedProcess&) = delete;
  StoppedProcess& operator=(const StoppedProcess&) = delete;
  ~StoppedProcess() { release(); }

  Status stop(pid_t pid);
  // Resumes every thread (and reaps those that exited while traced). Safe to call twice.
  void release();

  pid_t pid() const { return pid_; }
  std::vector<StoppedThread>& threads() { return threads_; }

  // Single-steps a thread until its instruction pointer leaves `range`. Gives up when a signal
  // arrives (it is kept pending for release) rather than run a handler on top of hook code.
  // Only for code of another timeskew build, whose shape we do not know.
  StepOutcome stepOutOf(StoppedThread& thread, const AddressRange& range, int maxSteps);

  uint64_t firstStopNs() const { return firstStopNs_; }
  uint64_t releasedNs() const { return releasedNs_; }
  uint64_t maxThreadPauseNs() const { return maxThreadPauseNs_; }

 private:
  Status seizeBatch(const std::vector<pid_t>& batch, std::vector<pid_t>& seized);
  Status awaitStops(const std::vector<pid_t>& seized);
  void noteStatus(pid_t tid, int status);
  void forget(pid_t tid);
  void reap(std::vector<pid_t> exited);

  void boostScheduling();
  void restoreScheduling();

  pid_t pid_ = 0;
  bool boosted_ = false;
  int savedPolicy_ = 0;
  int savedPriority_ = 0;
  std::vector<StoppedThread> threads_;
  std::vector<pid_t> attached_;  // seized, not yet released (may include threads not yet waited)
  uint64_t firstStopNs_ = 0;
  uint64_t releasedNs_ = 0;
  uint64_t maxThreadPauseNs_ = 0;
};

uint64_t monotonicNowNs();

}  // namespace timeskew
