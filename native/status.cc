#include "status.h"

namespace timeskew {

namespace {
void copyText(char* out, size_t size, const char* text) {
  if (text == nullptr) return;
  std::snprintf(out, size, "%s", text);
}
}  // namespace

Status failure(const char* code, int errnum, const char* syscall, const char* hint,
               const char* format, ...) {
  Status status;
  status.ok = false;
  copyText(status.code, sizeof status.code, code);
  status.errnum = errnum;
  copyText(status.syscall, sizeof status.syscall, syscall);
  copyText(status.hint, sizeof status.hint, hint);
  va_list args;
  va_start(args, format);
  std::vsnprintf(status.message, sizeof status.message, format, args);
  va_end(args);
  return status;
}

Status systemFailure(int errnum, const char* syscall, const char* what) {
  switch (errnum) {
    case ESRCH:
    case ENOENT:
      return failure("ESRCH", errnum, syscall, "the process exited or never existed",
                     "%s: no such process", what);
    case EPERM:
    case EACCES:
      return failure("EPERM", errnum, syscall,
                     "tracing another process needs the same user and no setuid, or root / "
                     "CAP_SYS_PTRACE; with Yama (kernel.yama.ptrace_scope >= 1) only ancestors "
                     "may trace: run as root, grant CAP_SYS_PTRACE or lower ptrace_scope",
                     "%s: permission denied", what);
    case ENOSYS:
      return failure("ENOTSUP", errnum, syscall, "this kernel lacks a system call timeskew needs",
                     "%s: not supported by the kernel", what);
    default:
      return failure("EIO", errnum, syscall, nullptr, "%s: %s", what, std::strerror(errnum));
  }
}

}  // namespace timeskew
