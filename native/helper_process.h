// Runs a ptrace operation in a short-lived forked helper process when the target is our own
// child or ourselves.
//
// Why: ptrace stops of a traced child are reported to every thread of the tracer's process. When
// the target is a child_process of this Node process, libuv's SIGCHLD handler calls
// waitpid(child, WNOHANG) and would take such a stop for the child's exit (a false 'exit' event,
// and our own waiter would hang). A separate tracer process keeps those notifications away from
// libuv. A process also cannot trace itself, and the helper (our child) can trace us.
#pragma once

#include <sys/types.h>

#include <functional>

#include "status.h"

namespace timeskew {

bool needsHelperProcess(pid_t target);

// Runs `operation` in a forked child that writes `size` bytes at `out` back through a pipe.
// Returns a failure Status (and leaves `out` alone) when the helper could not run or died.
Status runInHelperProcess(void* out, size_t size, const std::function<void(void*)>& operation);

template <typename Result, typename Operation>
Result runIsolated(pid_t target, Operation operation) {
  if (!needsHelperProcess(target)) return operation();
  Result result{};
  Status status = runInHelperProcess(&result, sizeof result, [&operation](void* out) {
    *static_cast<Result*>(out) = operation();
  });
  if (!status.ok) result.status = status;
  return result;
}

}  // namespace timeskew
