#include "launcher.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>

namespace timeskew {

namespace {
constexpr unsigned CLOSE_RANGE_CLOEXEC_FLAG = 1u << 2;  // CLOSE_RANGE_CLOEXEC, absent from older headers
}

LaunchResult launchStopped(const std::string& file, const std::vector<std::string>& argv,
                           const std::vector<std::string>& envp) {
  LaunchResult result;
  // Everything the child touches is prepared before fork: after fork in a multi-threaded process
  // the child may only make async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (const std::string& entry : envp) env.push_back(const_cast<char*>(entry.c_str()));
  env.push_back(nullptr);
  int reportPipe[2];
  if (::pipe2(reportPipe, O_CLOEXEC) != 0) {
    result.status = systemFailure(errno, "pipe2", "starting the program");
    return result;
  }
  const pid_t child = ::fork();
  if (child < 0) {
    result.status = systemFailure(errno, "fork", "starting the program");
    return result;
  }
  if (child == 0) {
    ::close(reportPipe[0]);
    // Node marks its standard streams close-on-exec; the program must inherit them.
    for (int fd = 0; fd <= 2; ++fd) ::fcntl(fd, F_SETFD, 0);
    // Nothing else of Node's leaks into the program (close_range: Linux 5.11+, else best effort).
    ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC_FLAG);
    // Node ignores SIGPIPE and SIGXFSZ; a program expects the defaults and an empty mask.
    for (int signal = 1; signal < NSIG; ++signal) {
      if (signal != SIGKILL && signal != SIGSTOP) ::signal(signal, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    ::execvpe(file.c_str(), args.data(), env.data());
    const int error = errno;  // exec failed: tell the parent why
    (void)!::write(reportPipe[1], &error, sizeof error);
    ::_exit(127);
  }
  ::close(reportPipe[1]);
  int execError = 0;
  const bool execFailed = ::read(reportPipe[0], &execError, sizeof execError) == sizeof execError;
  ::close(reportPipe[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (execFailed || !WIFSTOPPED(status)) {
    if (WIFSTOPPED(status)) ::kill(child, SIGKILL);
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    result.status = failure(execError == ENOENT ? "ENOENT" : "EINVAL", execError, "execve",
                            "check the command name and the PATH", "cannot run %s: %s",
                            file.c_str(), std::strerror(execError));
    return result;
  }
  // Stopped by the post-exec SIGTRAP: hand it over as a plain SIGSTOP so that the skew below
  // (a fresh tracer) finds an ordinary stopped process and leaves it stopped.
  ::ptrace(PTRACE_DETACH, child, nullptr, reinterpret_cast<void*>(static_cast<long>(SIGSTOP)));
  result.pid = child;
  return result;
}

ExitResult waitForExit(pid_t pid) {
  ExitResult result;
  int status = 0;
  for (;;) {
    pid_t got = ::waitpid(pid, &status, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      result.status = systemFailure(errno, "waitpid", "waiting for the program");
      return result;
    }
    if (WIFEXITED(status)) {
      result.code = WEXITSTATUS(status);
      return result;
    }
    if (WIFSIGNALED(status)) {
      result.signal = WTERMSIG(status);
      return result;
    }
  }
}

}  // namespace timeskew
