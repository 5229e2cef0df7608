// Reading and writing another process's memory.
//
// Reads use process_vm_readv (one call, no ptrace needed) and fall back to /proc/PID/mem where the
// kernel lacks it. Writes always go through /proc/PID/mem: the vDSO is mapped read-only, which
// process_vm_writev honours, while a write to /proc/PID/mem is a forced (debugger) write that
// copies the page privately into the target, leaving every other process's vDSO untouched.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "unique_fd.h"

namespace timeskew {

// False with errno set; a short read counts as failure (EIO).
bool readTargetMemory(pid_t pid, uint64_t address, void* out, size_t length);

// Reads up to `length` bytes, stopping at the first unmapped page; returns how many were read.
size_t readTargetMemoryPrefix(pid_t pid, uint64_t address, void* out, size_t length);

class TargetMemoryWriter {
 public:
  // False with errno set when /proc/PID/mem cannot be opened for writing.
  bool open(pid_t pid);
  // One pwrite: the kernel copies a range within a page in one go, so a writer killed by SIGKILL
  // leaves either the old bytes or the new ones, never a mix.
  bool write(uint64_t address, const void* data, size_t length);

 private:
  UniqueFd fd_;
};

}  // namespace timeskew
