#if defined(__x86_64__)
#include "x86_64/registers.h"

#include <sys/ptrace.h>
#include <sys/user.h>

#include <cerrno>
#include <cstddef>

namespace timeskew::x86_64 {

namespace {
constexpr long kRipOffset = offsetof(struct user_regs_struct, rip);
constexpr long kRspOffset = offsetof(struct user_regs_struct, rsp);
}

bool readStackPointer(pid_t tid, uint64_t& sp) {
  errno = 0;
  long value = ::ptrace(PTRACE_PEEKUSER, tid, reinterpret_cast<void*>(kRspOffset), nullptr);
  if (errno != 0) return false;
  sp = static_cast<uint64_t>(value);
  return true;
}

bool readInstructionPointer(pid_t tid, uint64_t& ip) {
  errno = 0;
  long value = ::ptrace(PTRACE_PEEKUSER, tid, reinterpret_cast<void*>(kRipOffset), nullptr);
  if (errno != 0) return false;
  ip = static_cast<uint64_t>(value);
  return true;
}

// Only RIP changes: a thread that is moved sits in vDSO code, never inside a system call, so
// orig_rax and the syscall-restart logic are left as they are.
bool writeInstructionPointer(pid_t tid, uint64_t ip) {
  return ::ptrace(PTRACE_POKEUSER, tid, reinterpret_cast<void*>(kRipOffset),
                  reinterpret_cast<void*>(ip)) == 0;
}

}  // namespace timeskew::x86_64
#endif
