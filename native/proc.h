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

// State letter of one thread ('?' when it is gone): like ProcessInfo::state.
char readThreadState(pid_t pid, pid_t tid);

// A thread of `pid` that has not exited, or 0. The leader may have exited (pthread_exit in
// main) while others run on: /proc/PID/{maps,mem} then describe the dead leader, and memory must
// be reached through a live thread.
pid_t findLiveThread(pid_t pid);

// Whether a signal is pending for this thread (or its process) that it does not block: such a
// signal will run a handler, or act, as soon as the thread runs.
bool hasDeliverableSignal(pid_t pid, pid_t tid);

// CPU time the thread has consumed (/proc/.../schedstat); false when the kernel does not say.
bool readThreadRuntimeNs(pid_t pid, pid_t tid, uint64_t& ns);

// Thread ids in /proc/PID/task; false with errno set when the process is gone.
bool listThreads(pid_t pid, std::vector<pid_t>& tids);

// Location of the [vdso] mapping; false when the process has none (kernel thread, or vdso=0).
// `memoryPid` is the process, or a live thread of it when its leader exited.
bool findVdsoMapping(pid_t memoryPid, AddressRange& range, int& error);

constexpr unsigned kKernelThreadFlag = 0x00200000;  // PF_KTHREAD
constexpr unsigned kExitingFlag = 0x00000004;       // PF_EXITING

}  // namespace timeskew
