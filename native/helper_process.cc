#include "helper_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "proc.h"
#include "unique_fd.h"

namespace timeskew {

namespace {

// Requests and results cross the socket byte for byte: plain data only.
static_assert(std::is_trivially_copyable<InstallRequest>::value, "sent to the helper as bytes");
static_assert(std::is_trivially_copyable<InstallResult>::value, "sent back as bytes");
static_assert(std::is_trivially_copyable<RestoreResult>::value, "sent back as bytes");

enum class Operation : uint32_t { kInstall = 1, kRestore = 2 };

struct Request {
  Operation operation;
  pid_t pid;
  InstallRequest install;
};

// The helper's end of the socket, once everything else it inherited is closed.
constexpr int kHelperFd = 3;
// How often an idle helper checks that its parent is still there. EOF on the socket normally tells
// it first; this covers a copy of our end held by a process forked without exec.
constexpr int kOrphanCheckMs = 1000;

bool sendAll(int fd, const void* data, size_t size) {
  for (;;) {
    // MSG_NOSIGNAL: a dead peer must be an error to handle, not a SIGPIPE.
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    return n == static_cast<ssize_t>(size);
  }
}

// One datagram of exactly `size` bytes (SOCK_SEQPACKET keeps message boundaries). 0 on EOF.
ssize_t receive(int fd, void* data, size_t size) {
  for (;;) {
    ssize_t n = ::recv(fd, data, size, MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

void closeInheritedFds() {
#if defined(SYS_close_range)
  if (::syscall(SYS_close_range, kHelperFd + 1, ~0u, 0) == 0) return;
#endif
  // Kernels before 5.9: list them (collect first, closing while reading would close the listing).
  std::vector<int> open;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (dirent* entry = ::readdir(dir)) {
      const int fd = std::atoi(entry->d_name);
      if (fd > kHelperFd && fd != ::dirfd(dir)) open.push_back(fd);
    }
    ::closedir(dir);
  }
  for (int fd : open) ::close(fd);
}

// Turns the fork into a process that holds nothing of Node's but the socket: a long-lived copy
// of Node's fds would keep listening sockets bound and pipes to other children from ever reading
// EOF, and Node's signal handlers would write into fds it no longer has.
void becomeHelper(int fd) {
  if (fd != kHelperFd) {
    ::dup2(fd, kHelperFd);  // clears FD_CLOEXEC, which no longer matters: the helper never execs
  }
  closeInheritedFds();
  const int null = ::open("/dev/null", O_RDWR);
  for (int stdFd = 0; stdFd <= 2; ++stdFd) {
    if (null >= 0) ::dup2(null, stdFd); else ::close(stdFd);
  }
  if (null > 2) ::close(null);

  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &action, nullptr);
  }
  // A Ctrl-C meant for the user's program must not kill the helper half-way through an operation:
  // it leaves when its parent does (EOF). A write to a dead parent fails with EPIPE instead.
  action.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGQUIT, &action, nullptr);
  ::sigaction(SIGPIPE, &action, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::prctl(PR_SET_NAME, "timeskew-helper", 0, 0, 0);
}

[[noreturn]] void serve(pid_t parent) {
  for (;;) {
    pollfd waiting = {kHelperFd, POLLIN, 0};
    const int ready = ::poll(&waiting, 1, kOrphanCheckMs);
    if (ready < 0 && errno != EINTR) ::_exit(1);
    if (ready <= 0) {
      if (::getppid() != parent) ::_exit(0);
      continue;
    }
    Request request;
    const ssize_t n = receive(kHelperFd, &request, sizeof request);
    if (n == 0) ::_exit(0);  // the parent is gone (or let us go)
    if (n != static_cast<ssize_t>(sizeof request)) ::_exit(1);
    // Taken: from here a failure of ours is the operation's, not a helper that never started it.
    const uint8_t taken = 1;
    if (!sendAll(kHelperFd, &taken, 1)) ::_exit(1);
    bool sent = false;
    if (request.operation == Operation::kInstall) {
      const InstallResult result = installSkew(request.install);
      sent = sendAll(kHelperFd, &result, sizeof result);
    } else if (request.operation == Operation::kRestore) {
      const RestoreResult result = restoreSkew(request.pid);
      sent = sendAll(kHelperFd, &result, sizeof result);
    }
    if (!sent) ::_exit(1);
  }
}

class Helper {
 public:
  // Runs `request` in the helper and copies its result (`size` bytes) to `out`; leaves `out`
  // alone and returns a failure when the helper died during the operation or cannot start.
  Status call(const Request& request, void* out, size_t size) {
    std::lock_guard<std::mutex> lock(mutex_);
    // A helper that died while idle (killed, or gone with a thread) never took the request: start
    // another and send it again. Once the helper took it, never resend: it may have half-run.
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (pid_ == 0) {
        Status status = start();
        if (!status.ok) return status;
      }
      const Outcome outcome = exchange(request, out, size);
      if (outcome == Outcome::kDone) return Status::success();
      const int waitStatus = stop();
      if (outcome == Outcome::kDied) {
        return failure("EIO", EIO, "fork", "the helper process was killed; the target is unharmed",
                       "the timeskew helper process died (status %d)", waitStatus);
      }
    }
    return failure("EIO", EIO, "fork", "the helper process exits as soon as it starts",
                   "the timeskew helper process could not be started");
  }

 private:
  enum class Outcome { kDone, kNotTaken, kDied };

  Status start() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
      return systemFailure(errno, "socketpair", "starting the helper");
    }
    UniqueFd ours(fds[0]);
    UniqueFd theirs(fds[1]);
    const pid_t parent = ::getpid();
    const pid_t child = ::fork();
    if (child < 0) return systemFailure(errno, "fork", "starting the helper");
    if (child == 0) {
      // A copy of this process with one thread: only system calls and malloc (which glibc keeps
      // usable after fork) from here, and it never returns.
      becomeHelper(theirs.get());
      serve(parent);
    }
    // With Yama (ptrace_scope 1) a child may trace its parent only when the parent names it. Set
    // before the first request is sent, so before the helper can try.
    ::prctl(PR_SET_PTRACER, child, 0, 0, 0);
    pid_ = child;
    socket_ = std::move(ours);
    return Status::success();
  }

  // Closes our end (an idle helper then reads EOF and exits) and reaps the helper. Only called
  // when it has exited or is about to: it holds no operation of ours.
  int stop() {
    socket_.reset();
    int status = 0;
    while (::waitpid(pid_, &status, __WALL) < 0 && errno == EINTR) {
    }
    ::prctl(PR_SET_PTRACER, 0, 0, 0, 0);
    pid_ = 0;
    return status;
  }

  Outcome exchange(const Request& request, void* out, size_t size) {
    if (!sendAll(socket_.get(), &request, sizeof request)) return Outcome::kNotTaken;
    uint8_t taken = 0;
    if (receive(socket_.get(), &taken, 1) != 1) return Outcome::kNotTaken;
    std::vector<uint8_t> staging(size);
    if (receive(socket_.get(), staging.data(), size) != static_cast<ssize_t>(size)) {
      return Outcome::kDied;
    }
    std::memcpy(out, staging.data(), size);
    return Outcome::kDone;
  }

  std::mutex mutex_;
  pid_t pid_ = 0;
  UniqueFd socket_;
};

// Never destroyed: a worker thread may still be using it while the process exits.
Helper& helper() {
  static Helper* instance = new Helper;
  return *instance;
}

}  // namespace

bool needsHelperProcess(pid_t target) {
  if (target == ::getpid()) return true;
  ProcessInfo info;
  return readProcessInfo(target, info) && info.ppid == ::getpid();
}

InstallResult installIsolated(const InstallRequest& install) {
  if (!needsHelperProcess(install.pid)) return installSkew(install);
  Request request{};
  request.operation = Operation::kInstall;
  request.pid = install.pid;
  request.install = install;
  InstallResult result;
  Status status = helper().call(request, &result, sizeof result);
  if (!status.ok) result.status = status;
  return result;
}

RestoreResult restoreIsolated(pid_t pid) {
  if (!needsHelperProcess(pid)) return restoreSkew(pid);
  Request request{};
  request.operation = Operation::kRestore;
  request.pid = pid;
  RestoreResult result;
  Status status = helper().call(request, &result, sizeof result);
  if (!status.ok) result.status = status;
  return result;
}

}  // namespace timeskew
