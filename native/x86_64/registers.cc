#if defined(__x86_64__)
#include "x86_64/registers.h"

#include <sys/ptrace.h>
#include <sys/user.h>

#include <cerrno>
#include <cstddef>

#include "target_memory.h"

namespace timeskew::x86_64 {

namespace {
constexpr long kRipOffset = offsetof(struct user_regs_struct, rip);
constexpr long kRspOffset = offsetof(struct user_regs_struct, rsp);
constexpr long kRbpOffset = offsetof(struct user_regs_struct, rbp);
}

bool readFramePointer(pid_t tid, uint64_t& bp) {
  errno = 0;
  long value = ::ptrace(PTRACE_PEEKUSER, tid, reinterpret_cast<void*>(kRbpOffset), nullptr);
  if (errno != 0) return false;
  bp = static_cast<uint64_t>(value);
  return true;
}

bool readStackPointer(pid_t tid, uint64_t& sp) {
  errno = 0;
  long value = ::ptrace(PTRACE_PEEKUSER, tid, reinterpret_cast<void*>(kRspOffset), nullptr);
  if (errno != 0) return false;
  sp = static_cast<uint64_t>(value);
  return true;
}

bool emulateReturn(pid_t pid, pid_t tid) {
  struct user_regs_struct regs;
  if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return false;
  uint64_t returnAddress = 0;
  if (!readTargetMemory(pid, regs.rsp, &returnAddress, sizeof returnAddress)) return false;
  regs.rip = returnAddress;
  regs.rsp += sizeof returnAddress;
  return ::ptrace(PTRACE_SETREGS, tid, nullptr, &regs) == 0;
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
