// Stop-the-world for one process: every thread seized (PTRACE_SEIZE, no SIGSTOP, no EXITKILL)
// and interrupted, the task list re-read until no thread appears that is not stopped. The
// destructor releases every thread on every path, so an error can never leave the target stopped.
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
  void release();

  pid_t pid() const { return pid_; }
  std::vector<StoppedThread>& threads() { return threads_; }

  // Single-steps a thread until its instruction pointer leaves `range`. Gives up when a signal
  // arrives (it is kept pending for release) rather than run a handler on top of hook code.
  StepOutcome stepOutOf(StoppedThread& thread, const AddressRange& range, int maxSteps);

  enum class RunOutcome { kTrapped, kSignal, kGone, kTimedOut };
  // Lets `threads` run (the others stay stopped) until each stops at a breakpoint (SIGTRAP).
  // A thread that stops for another signal keeps it pending; one that takes longer than
  // `timeoutNs` is interrupted. Either way it is stopped again on return.
  std::vector<RunOutcome> runUntilTrap(const std::vector<StoppedThread*>& threads,
                                       uint64_t timeoutNs);

  uint64_t firstStopNs() const { return firstStopNs_; }
  uint64_t releasedNs() const { return releasedNs_; }
  uint64_t maxThreadPauseNs() const { return maxThreadPauseNs_; }

 private:
  Status seizeBatch(const std::vector<pid_t>& batch, std::vector<pid_t>& seized);
  void awaitStops(const std::vector<pid_t>& seized);

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
