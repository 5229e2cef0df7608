// The outcome of an engine operation. Plain data on purpose: an operation may run in a forked
// helper process and send its Status back through a pipe byte for byte.
#pragma once

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace timeskew {

struct Status {
  bool ok = true;
  char code[12] = {};      // "ESRCH", "EPERM", ... as seen by JavaScript
  int errnum = 0;          // the errno behind it, 0 when none
  char syscall[24] = {};   // the call that failed, empty when none
  char message[224] = {};
  char hint[288] = {};

  static Status success() { return Status{}; }
};

// printf-style constructors; the hint may be null.
Status failure(const char* code, int errnum, const char* syscall, const char* hint,
               const char* format, ...) __attribute__((format(printf, 5, 6)));

// Maps an errno from a system call on the target to a JS-visible code with a useful hint.
Status systemFailure(int errnum, const char* syscall, const char* what);

}  // namespace timeskew
