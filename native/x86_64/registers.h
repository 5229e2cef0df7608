// Register access for stopped tracees: the only registers timeskew ever changes is the
// instruction pointer of a thread found inside bytes it rewrites.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace timeskew::x86_64 {

bool readInstructionPointer(pid_t tid, uint64_t& ip);
bool writeInstructionPointer(pid_t tid, uint64_t ip);
bool readStackPointer(pid_t tid, uint64_t& sp);
bool readFramePointer(pid_t tid, uint64_t& bp);
// The three registers that locate a thread in the code and on its stack, in one system call.
bool readFrameRegisters(pid_t tid, uint64_t& ip, uint64_t& sp, uint64_t& fp);
// A thread stopped on its way out of a wait that the kernel never restarts after a stop
// (epoll_wait, semop, sigtimedwait...) would see EINTR because of us: put it back on the
// system call instruction. Not when a signal is about to interrupt it anyway.
bool rewindInterruptedWait(pid_t pid, pid_t tid);
// Performs a `ret` on behalf of a stopped thread: pops the return address into the IP.
bool emulateReturn(pid_t pid, pid_t tid);

}  // namespace timeskew::x86_64
