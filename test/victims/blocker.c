// Victim for test/torture/blocked-syscalls.test.ts: threads sit in blocking system calls while the
// test skews and restores the process again and again. Stopping a thread with ptrace interrupts
// its system call; the kernel must restart it transparently when the thread is released. This
// victim checks, for each call, that it returned what it would have returned had nobody touched
// the process: not early, not with EINTR.
//
// Commands:
//   block <ms> -> "blocking" once every thread is about to enter its call; at <ms> after the
//                 start a waker thread releases the calls that wait for an event
//   result     -> joins the threads: "blocked <call>=<verdict>:<elapsed_us>[:ret=<n>:errno=<n>] ..."
//                 where verdict is ok, early (returned before its time or before the waker acted),
//                 EINTR, error (another failure) or ret (an unexpected return value)
//   exit <code>, EOF -> exit
// Times are raw CLOCK_MONOTONIC syscalls: whatever happens to the vDSO cannot bias them.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { CALL_READ, CALL_NANOSLEEP, CALL_EPOLL, CALL_FUTEX_TIMED, CALL_FUTEX_WAKE, CALL_ACCEPT, CALL_COUNT };
static const char *const call_names[CALL_COUNT] = {"read", "nanosleep", "epoll_wait", "futex_timed", "futex_wake",
                                                   "accept"};

static int64_t mono_ns(void) {
  struct timespec ts;
  syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

struct call {
  pthread_t thread;
  int index;
  long ret;
  int err;
  int64_t elapsed_ns;
  int woken_at_return;  // whether the waker had acted when the call returned
};

static struct call calls[CALL_COUNT];
static pthread_t waker;
static int64_t block_ns;
static int pipe_fds[2] = {-1, -1};
static int epoll_fd = -1;
static int listen_fd = -1;
static struct sockaddr_un listen_addr;
static socklen_t listen_len;
static _Atomic uint32_t futex_timed_word, futex_wake_word;
static atomic_bool woken;          // set by the waker just before it releases the event calls
static atomic_int entering;        // threads that are about to make their call

static long do_call(int index) {
  char byte;
  struct epoll_event ev;
  struct timespec ts = {block_ns / 1000000000LL, (long)(block_ns % 1000000000LL)};
  switch (index) {
    case CALL_READ:
      return read(pipe_fds[0], &byte, 1);
    case CALL_NANOSLEEP:
      return nanosleep(&ts, NULL);
    case CALL_EPOLL:
      return epoll_wait(epoll_fd, &ev, 1, (int)(block_ns / 1000000));
    case CALL_FUTEX_TIMED:
      return syscall(SYS_futex, &futex_timed_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    case CALL_FUTEX_WAKE:
      return syscall(SYS_futex, &futex_wake_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    case CALL_ACCEPT: {
      long fd = accept(listen_fd, NULL, NULL);
      if (fd >= 0) close((int)fd);
      return fd >= 0 ? 0 : -1;
    }
  }
  return -1;
}

static void *call_main(void *arg) {
  struct call *c = arg;
  atomic_fetch_add(&entering, 1);
  const int64_t start = mono_ns();
  errno = 0;
  c->ret = do_call(c->index);
  c->err = c->ret < 0 ? errno : 0;
  c->woken_at_return = atomic_load(&woken);
  c->elapsed_ns = mono_ns() - start;
  return NULL;
}

static void *waker_main(void *arg) {
  (void)arg;
  struct timespec ts = {block_ns / 1000000000LL, (long)(block_ns % 1000000000LL)};
  while (syscall(SYS_nanosleep, &ts, &ts) != 0 && errno == EINTR) {
  }
  atomic_store(&woken, 1);
  (void)!write(pipe_fds[1], "x", 1);
  atomic_store(&futex_wake_word, 1);
  syscall(SYS_futex, &futex_wake_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    (void)!connect(fd, (struct sockaddr *)&listen_addr, listen_len);
    close(fd);
  }
  return NULL;
}

static int setup(void) {
  atomic_store(&woken, 0);
  atomic_store(&entering, 0);
  atomic_store(&futex_timed_word, 0);
  atomic_store(&futex_wake_word, 0);
  if (pipe(pipe_fds) != 0) return -1;
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);  // nothing registered: it can only time out
  listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (epoll_fd < 0 || listen_fd < 0) return -1;
  // Abstract address: nothing to clean up on disk.
  memset(&listen_addr, 0, sizeof listen_addr);
  listen_addr.sun_family = AF_UNIX;
  int n = snprintf(listen_addr.sun_path + 1, sizeof listen_addr.sun_path - 1, "timeskew-blocker-%d", (int)getpid());
  listen_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
  if (bind(listen_fd, (struct sockaddr *)&listen_addr, listen_len) != 0 || listen(listen_fd, 4) != 0) return -1;
  return 0;
}

static void teardown(void) {
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  close(epoll_fd);
  close(listen_fd);
}

// Whether the call returned what it would have without interference.
static const char *verdict(const struct call *c) {
  const int timed = c->index == CALL_NANOSLEEP || c->index == CALL_EPOLL || c->index == CALL_FUTEX_TIMED;
  if (c->ret < 0 && !(c->index == CALL_FUTEX_TIMED && c->err == ETIMEDOUT) &&
      !(c->index == CALL_FUTEX_WAKE && c->err == EAGAIN)) {
    return c->err == EINTR ? "EINTR" : "error";
  }
  if (c->index == CALL_FUTEX_TIMED && c->ret >= 0) return "ret";
  // FUTEX_WAIT may return EAGAIN when the word already changed as it (re)started: futex's own
  // contract, which every futex user handles by rechecking the word. It happens here when the
  // wake comes while the thread is stopped (by ptrace or by SIGSTOP alike): the restarted wait
  // then finds the new value. Correct only if the waker has really acted by then.
  if (c->index == CALL_FUTEX_WAKE && c->ret < 0 && c->err == EAGAIN) return c->woken_at_return ? "ok" : "early";
  if (c->index == CALL_READ && c->ret != 1) return "ret";
  if (c->index != CALL_READ && c->index != CALL_FUTEX_TIMED && c->ret != 0) return "ret";
  if (timed && c->elapsed_ns < block_ns) return "early";
  // An event call (read, futex_wake, accept) must not return before the waker acted.
  if (!timed && !c->woken_at_return) return "early";
  return "ok";
}

int main(void) {
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  char line[256];
  int running = 0;
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    long long a1 = 0;
    if (sscanf(line, "block %lld", &a1) == 1 && !running) {
      block_ns = a1 * 1000000LL;
      if (setup() != 0) {
        printf("error setup %d\n", errno);
      } else {
        for (int i = 0; i < CALL_COUNT; i++) {
          calls[i].index = i;
          pthread_create(&calls[i].thread, NULL, call_main, &calls[i]);
        }
        pthread_create(&waker, NULL, waker_main, NULL);
        while (atomic_load(&entering) < CALL_COUNT) usleep(100);
        usleep(5000);  // let the last ones get into their calls
        running = 1;
        printf("blocking\n");
      }
    } else if (strcmp(line, "result") == 0 && running) {
      for (int i = 0; i < CALL_COUNT; i++) pthread_join(calls[i].thread, NULL);
      pthread_join(waker, NULL);
      char out[512];
      size_t at = snprintf(out, sizeof out, "blocked");
      for (int i = 0; i < CALL_COUNT; i++) {
        const char *v = verdict(&calls[i]);
        at += snprintf(out + at, sizeof out - at, " %s=%s:%lld", call_names[i], v,
                       (long long)(calls[i].elapsed_ns / 1000));
        if (strcmp(v, "error") == 0 || strcmp(v, "ret") == 0) {
          at += snprintf(out + at, sizeof out - at, ":ret=%ld:errno=%d", calls[i].ret, calls[i].err);
        }
      }
      teardown();
      running = 0;
      printf("%s\n", out);
    } else if (sscanf(line, "exit %lld", &a1) == 1) {
      _exit((int)a1);
    } else {
      printf("error unknown or out-of-order command: %s\n", line);
    }
    fflush(stdout);
  }
  return 0;
}
