// Starts a victim that is NOT a child of the test process, for the torture suite.
//
// Why: when the target is the caller's own child, timeskew runs every operation in a forked
// helper process (so libuv never sees a ptrace stop); that costs a fork per operation, ~37 ms,
// and the torture suite runs tens of thousands of operations. With this launcher in between, the
// test process is the victim's grandparent, so operations run in-process.
//
// The launcher stays alive as the victim's parent and reaper: it waits for the victim and writes
// its true exit status to fd 3, so a test can check both "no zombie is left behind" (the launcher
// can reap only once no tracer holds the victim) and "the exit status is the real one".
//
//   launcher <program> [args...]
//   fd 0/1/2: inherited by the victim untouched (the launcher never reads or writes them)
//   fd 3:     "launched <pid>\n", then "exited <code>\n" or "killed <signal>\n", then EOF
//
// The victim runs in a new session (setsid), see below.
//
// Nothing survives a test run: the launcher dies with the process that spawned it, and the victim
// dies with the launcher (PR_SET_PDEATHSIG, which survives execve of a non-setuid program).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void report(const char *text) {
  size_t left = strlen(text);
  while (left > 0) {
    ssize_t n = write(3, text, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text += n;
    left -= (size_t)n;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: launcher <program> [args...]\n");
    return 2;
  }
  const pid_t spawner = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != spawner) return 1;  // the spawner died before the line above took effect
  if (fcntl(3, F_SETFD, FD_CLOEXEC) != 0) {
    perror("launcher: fd 3");
    return 2;
  }
  const pid_t self = getpid();
  const pid_t child = fork();
  if (child < 0) {
    perror("launcher: fork");
    return 1;
  }
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != self) _exit(1);
    // A session of its own, as a real target would have: with the scheduler's autogroups (the
    // default), a victim whose threads spin on every core then shares the CPUs with the test
    // process instead of starving it, and the test's terminal signals never reach it.
    setsid();
    execv(argv[1], argv + 1);
    perror("launcher: exec");
    _exit(127);
  }
  char line[64];
  snprintf(line, sizeof line, "launched %d\n", (int)child);
  report(line);
  // Only exits: without WUNTRACED, group stops (SIGSTOP) and ptrace stops are not reported here.
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("launcher: waitpid");
      return 1;
    }
  }
  if (WIFEXITED(status)) snprintf(line, sizeof line, "exited %d\n", WEXITSTATUS(status));
  else snprintf(line, sizeof line, "killed %d\n", WTERMSIG(status));
  report(line);
  return 0;
}
