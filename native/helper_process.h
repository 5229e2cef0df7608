// Runs install and restore in a helper process when the target is our own child or ourselves.
//
// Why: ptrace stops of a traced child are reported to every thread of the tracer's process. When
// the target is a child_process of this Node process, libuv's SIGCHLD handler calls
// waitpid(child, WNOHANG) and would take such a stop for the child's exit (a false 'exit' event,
// and our own waiter would hang). A separate tracer process keeps those notifications away from
// libuv. A process also cannot trace itself, and the helper (our child) can trace us.
//
// One helper serves the whole process: forked on first use, it takes requests one at a time over a
// socketpair and lives until this process exits (it then reads EOF) or it is killed, in which case
// the next request starts another. Forking per operation cost a fork of the whole Node process
// each time (milliseconds), which made 1,000 children take seconds to skew.
#pragma once

#include <sys/types.h>

#include "injector.h"

namespace timeskew {

bool needsHelperProcess(pid_t target);

// installSkew / restoreSkew, in the helper when `needsHelperProcess`, else on the calling thread.
InstallResult installIsolated(const InstallRequest& request);
RestoreResult restoreIsolated(pid_t pid);

}  // namespace timeskew
