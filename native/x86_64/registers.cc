#if defined(__x86_64__)
#include "x86_64/registers.h"

#include <sys/ptrace.h>
#include <sys/user.h>

#include <cerrno>
#include <cstddef>

#include "proc.h"
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

bool readFrameRegisters(pid_t tid, uint64_t& ip, uint64_t& sp, uint64_t& fp) {
  struct user_regs_struct regs;
  if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return false;
  ip = regs.rip;
  sp = regs.rsp;
  fp = regs.rbp;
  return true;
}

namespace {
// x86_64 numbers of the waits that return EINTR after a stop instead of restarting
// (signal(7), "Interruption of system calls and library functions by stop signals").
bool isUnrestartedWait(uint64_t number) {
  switch (number) {
    case 232:  // epoll_wait
    case 281:  // epoll_pwait
    case 441:  // epoll_pwait2
    case 65:   // semop
    case 220:  // semtimedop
    case 128:  // rt_sigtimedwait
      return true;
    default:
      return false;
  }
}
}  // namespace

bool rewindInterruptedWait(pid_t pid, pid_t tid) {
  struct user_regs_struct regs;
  if (::ptrace(PTRACE_GETREGS, tid, nullptr, &regs) != 0) return false;
  // orig_rax is -1 unless the thread entered the kernel by a system call.
  if (static_cast<int64_t>(regs.orig_rax) < 0 || !isUnrestartedWait(regs.orig_rax) ||
      static_cast<int64_t>(regs.rax) != -EINTR) {
    return false;
  }
  if (hasDeliverableSignal(pid, tid)) return false;
  // What the kernel does itself for a restartable call: back over `syscall` (2 bytes), number
  // back in rax; the arguments are still in their registers. A timed wait starts its full
  // timeout again.
  regs.rip -= 2;
  regs.rax = regs.orig_rax;
  return ::ptrace(PTRACE_SETREGS, tid, nullptr, &regs) == 0;
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
