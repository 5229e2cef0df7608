// Facts about a process read from /proc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace timeskew {

struct ProcessInfo {
  char state = '?';  // R, S, D, T (stopped), t (traced), Z (zombie), X, I
  pid_t ppid = 0;
  unsigned flags = 0;  // PF_* from /proc/PID/stat, to recognise kernel threads
};

struct AddressRange {
  uint64_t start = 0;
  uint64_t end = 0;
  bool contains(uint64_t address) const { return address >= start && address < end; }
};

// Reads a whole /proc file (or any small file); false with errno set on failure.
bool readSmallFile(const std::string& path, std::string& out);

bool readProcessInfo(pid_t pid, ProcessInfo& info);

// TracerPid of one thread, 0 when untraced, -1 when it could not be read.
pid_t readTracer(pid_t pid, pid_t tid);

// Thread ids in /proc/PID/task; false with errno set when the process is gone.
bool listThreads(pid_t pid, std::vector<pid_t>& tids);

// Location of the [vdso] mapping; false when the process has none (kernel thread, or vdso=0).
bool findVdsoMapping(pid_t pid, AddressRange& range, int& error);

constexpr unsigned kKernelThreadFlag = 0x00200000;  // PF_KTHREAD

}  // namespace timeskew
