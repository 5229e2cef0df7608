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
// Performs a `ret` on behalf of a stopped thread: pops the return address into the IP.
bool emulateReturn(pid_t pid, pid_t tid);

}  // namespace timeskew::x86_64
