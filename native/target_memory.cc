#include "target_memory.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <string>

namespace timeskew {

namespace {

bool readThroughProcMem(pid_t pid, uint64_t address, void* out, size_t length) {
  UniqueFd fd(::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  ssize_t n = ::pread(fd.get(), out, length, static_cast<off_t>(address));
  if (n < 0) return false;
  if (static_cast<size_t>(n) != length) {
    errno = EIO;
    return false;
  }
  return true;
}

}  // namespace

bool readTargetMemory(pid_t pid, uint64_t address, void* out, size_t length) {
  // Remembered process-wide: a kernel without the call will not grow it.
  static std::atomic<bool> vmReadvMissing{false};
  if (!vmReadvMissing) {
    struct iovec local = {out, length};
    struct iovec remote = {reinterpret_cast<void*>(address), length};
    ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n >= 0 && static_cast<size_t>(n) == length) return true;
    if (n < 0 && errno == ENOSYS) {
      vmReadvMissing = true;
    } else if (n < 0 && errno != EFAULT) {
      return false;
    }
  }
  return readThroughProcMem(pid, address, out, length);
}

size_t readTargetMemoryPrefix(pid_t pid, uint64_t address, void* out, size_t length) {
  struct iovec local = {out, length};
  struct iovec remote = {reinterpret_cast<void*>(address), length};
  const ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (n > 0) return static_cast<size_t>(n);
  // Without process_vm_readv: the page-sized head, which holds what callers look for first.
  const size_t head = std::min<size_t>(length, 4096 - (address & 4095));
  return readThroughProcMem(pid, address, out, head) ? head : 0;
}

bool TargetMemoryWriter::open(pid_t pid) {
  fd_.reset(::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDWR | O_CLOEXEC));
  return fd_.valid();
}

bool TargetMemoryWriter::write(uint64_t address, const void* data, size_t length) {
  for (;;) {
    ssize_t n = ::pwrite(fd_.get(), data, length, static_cast<off_t>(address));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (static_cast<size_t>(n) != length) {
      errno = EIO;
      return false;
    }
    return true;
  }
}

}  // namespace timeskew
