// Starting a program whose clock is skewed from its first instruction (the CLI's `run`): the
// child is traced across execve, so it stops right after the new image is mapped (its new vDSO
// included) and before any of its code runs; it is then left group-stopped (SIGSTOP) and
// untraced, ready for a normal skew followed by SIGCONT.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "status.h"

namespace timeskew {

struct LaunchResult {
  Status status;
  pid_t pid = 0;
};

LaunchResult launchStopped(const std::string& file, const std::vector<std::string>& argv,
                           const std::vector<std::string>& envp);

struct ExitResult {
  Status status;
  int code = -1;    // exit code, or -1 when killed by a signal
  int signal = 0;   // terminating signal, 0 when it exited
};

// Waits for a child started by launchStopped (libuv does not know it, so nobody else reaps it).
ExitResult waitForExit(pid_t pid);

}  // namespace timeskew
