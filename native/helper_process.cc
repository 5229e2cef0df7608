#include "helper_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <mutex>
#include <cstdint>

#include "proc.h"
#include "unique_fd.h"

namespace timeskew {

bool needsHelperProcess(pid_t target) {
  if (target == ::getpid()) return true;
  ProcessInfo info;
  return readProcessInfo(target, info) && info.ppid == ::getpid();
}

Status runInHelperProcess(void* out, size_t size, const std::function<void(void*)>& operation) {
  // One helper at a time: a helper forked while another's pipes are open would inherit their
  // ends and keep them from ever reading EOF, and PR_SET_PTRACER is process-wide.
  static std::mutex oneAtATime;
  std::lock_guard<std::mutex> lock(oneAtATime);
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return systemFailure(errno, "pipe2", "starting a helper");
  UniqueFd readEnd(fds[0]);
  UniqueFd writeEnd(fds[1]);
  // The helper waits on this pipe until we have allowed it to trace us (Yama, see below).
  if (::pipe2(fds, O_CLOEXEC) != 0) return systemFailure(errno, "pipe2", "starting a helper");
  UniqueFd goRead(fds[0]);
  UniqueFd goWrite(fds[1]);

  const pid_t child = ::fork();
  if (child < 0) return systemFailure(errno, "fork", "starting a helper");
  if (child == 0) {
    // The helper: a copy of this process with one thread. It only runs the operation (plain
    // system calls and malloc, which glibc keeps usable after fork) and leaves with _exit.
    readEnd.reset();
    goWrite.reset();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    char go;
    while (::read(goRead.get(), &go, 1) < 0 && errno == EINTR) {
    }
    // The result may be large: build it on the heap, not on the helper's inherited stack slice.
    uint8_t* buffer = new uint8_t[size];
    operation(buffer);
    const uint8_t* cursor = buffer;
    size_t left = size;
    while (left > 0) {
      ssize_t n = ::write(writeEnd.get(), cursor, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(1);
      cursor += n;
      left -= static_cast<size_t>(n);
    }
    ::_exit(0);
  }
  writeEnd.reset();
  goRead.reset();
  // With Yama (ptrace_scope 1) a child may trace its parent only when the parent names it.
  ::prctl(PR_SET_PTRACER, child, 0, 0, 0);
  goWrite.reset();  // EOF: go

  uint8_t* cursor = static_cast<uint8_t*>(out);
  size_t received = 0;
  uint8_t* staging = new uint8_t[size];
  while (received < size) {
    ssize_t n = ::read(readEnd.get(), staging + received, size - received);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    received += static_cast<size_t>(n);
  }
  int status = 0;
  while (::waitpid(child, &status, __WALL) < 0 && errno == EINTR) {
  }
  ::prctl(PR_SET_PTRACER, 0, 0, 0, 0);
  if (received == size) std::copy(staging, staging + size, cursor);
  delete[] staging;
  if (received != size) {
    return failure("EIO", EIO, "fork", "the helper process was killed; the target is unharmed",
                   "the timeskew helper process died (status %d)", status);
  }
  return Status::success();
}

}  // namespace timeskew
