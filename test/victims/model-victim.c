// Victim for the clock-model tests (rate, freeze, absolute time, strobe, groups). It measures its
// own clock: every vDSO reading is bracketed by two raw clock_gettime system calls on the same
// clock id, which timeskew never fakes, so the test learns both the skewed and the real time of
// one instant without trusting any other process's clock. See test/support/model-victim.ts.
//
// <clk> is a clock name (realtime, monotonic, boottime, tai, realtime_coarse, monotonic_coarse,
// monotonic_raw), gtod (gettimeofday, bracketed by raw CLOCK_REALTIME) or a numeric clock id.
// A bracket is "v=<vDSO ns> a=<raw ns before> b=<raw ns after>".
//
// Commands (one reply line each):
//   read <clk>                 -> a bracket
//   measure <clk> <ms>         -> "v0= a0= b0= v1= a1= b1=": the narrowest of 32 brackets, a sleep
//                                 of <ms> (nanosleep: kernel time, not the vDSO), another bracket
//   monotonic-check <clk> <ms> -> "reads= backwards= maxback= maxback_raw= first= last=": reads <clk>
//                                 in a loop for <ms> of raw time, counting readings below the one
//                                 before (maxback_raw: raw time just after the largest such step)
//   freeze-check <clk> <n> <us> -> "reads= min= max= rawspan=": <n> readings <us> apart
//   sample <clk> <n> <us>      -> "skews=<s>,<s>,...": v - (a + b) / 2 of <n> brackets <us> apart
//   spawn <ms>                 -> "spawned <pid>": a child reporter (see below), killed with us
//   fork-reporter <ms>         -> "spawned <pid>": the same without exec, so it inherits our skew
//   exec                       -> no reply; execs itself (same pid), which prints "ready <pid>"
//   exit <code>                -> no reply, _exit(code)
//   EOF                        -> exit 0
// argv "--reporter <ms> <gen>": prints "report pid=<pid> gen=<gen> v= a= b=" (CLOCK_REALTIME) every
// <ms> ms with one write(2) per line, and on SIGUSR1 execs itself with gen + 1 (same pid).
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_SEC 1000000000LL
#define CLOCK_GTOD (-1)
#define BRACKET_TRIES 32

static int64_t ts_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * NS_PER_SEC + ts->tv_nsec; }

static int64_t raw_ns(clockid_t id) {
  struct timespec ts;
  if (syscall(SYS_clock_gettime, id, &ts) != 0) return INT64_MIN;
  return ts_ns(&ts);
}

// The vDSO reading: what timeskew skews.
static int64_t vdso_ns(int clk) {
  if (clk == CLOCK_GTOD) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * NS_PER_SEC + (int64_t)tv.tv_usec * 1000;
  }
  struct timespec ts;
  if (clock_gettime((clockid_t)clk, &ts) != 0) return INT64_MIN;
  return ts_ns(&ts);
}

static clockid_t raw_clock_of(int clk) { return clk == CLOCK_GTOD ? CLOCK_REALTIME : (clockid_t)clk; }

struct bracket {
  int64_t v, a, b;
};

static struct bracket read_bracket(int clk) {
  struct bracket r;
  clockid_t raw = raw_clock_of(clk);
  r.a = raw_ns(raw);
  r.v = vdso_ns(clk);
  r.b = raw_ns(raw);
  return r;
}

// The narrowest of several brackets: the one least disturbed by preemption.
static struct bracket best_bracket(int clk) {
  struct bracket best = read_bracket(clk);
  for (int i = 1; i < BRACKET_TRIES; i++) {
    struct bracket r = read_bracket(clk);
    if (r.b - r.a < best.b - best.a) best = r;
  }
  return best;
}

static int parse_clock(const char *name, int *clk) {
  static const struct {
    const char *name;
    int id;
  } names[] = {
      {"realtime", CLOCK_REALTIME},
      {"monotonic", CLOCK_MONOTONIC},
      {"monotonic_raw", CLOCK_MONOTONIC_RAW},
      {"realtime_coarse", CLOCK_REALTIME_COARSE},
      {"monotonic_coarse", CLOCK_MONOTONIC_COARSE},
      {"boottime", CLOCK_BOOTTIME},
      {"tai", CLOCK_TAI},
      {"gtod", CLOCK_GTOD},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (strcmp(name, names[i].name) == 0) {
      *clk = names[i].id;
      return 1;
    }
  }
  char *end;
  long id = strtol(name, &end, 10);
  if (*name == '\0' || *end != '\0' || id < 0 || id > 11) return 0;
  *clk = (int)id;
  return 1;
}

static void sleep_ns(int64_t ns) {
  struct timespec ts = {(time_t)(ns / NS_PER_SEC), (long)(ns % NS_PER_SEC)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void print_bracket(const char *prefix, struct bracket r, const char *suffix) {
  printf("%sv%s=%" PRId64 " a%s=%" PRId64 " b%s=%" PRId64, prefix, suffix, r.v, suffix, r.a, suffix, r.b);
}

// ---- reporter ----------------------------------------------------------------------------------

static volatile sig_atomic_t exec_requested;

static void on_usr1(int sig) {
  (void)sig;
  exec_requested = 1;
}

static int reporter(const char *self, long period_ms, long gen) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // kept across exec: a reporter never outlives its parent
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  for (;;) {
    if (exec_requested) {
      char ms[32], next[32];
      snprintf(ms, sizeof ms, "%ld", period_ms);
      snprintf(next, sizeof next, "%ld", gen + 1);
      execl("/proc/self/exe", self, "--reporter", ms, next, (char *)NULL);
      perror("model-victim: exec");
      _exit(127);
    }
    struct bracket r = best_bracket(CLOCK_REALTIME);
    char line[256];
    int n = snprintf(line, sizeof line, "report pid=%d gen=%ld v=%" PRId64 " a=%" PRId64 " b=%" PRId64 "\n",
                     (int)getpid(), gen, r.v, r.a, r.b);
    // One write per line: lines of concurrent reporters on the shared stdout never interleave.
    if (write(STDOUT_FILENO, line, (size_t)n) < 0) _exit(0);
    sleep_ns((int64_t)period_ms * 1000000);
  }
}

// ---- command loop ------------------------------------------------------------------------------

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--reporter") == 0) return reporter(argv[0], atol(argv[2]), atol(argv[3]));
  printf("ready %d\n", (int)getpid());
  fflush(stdout);

  char line[512];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    char name[64];
    long long n1 = 0, n2 = 0;
    int clk = 0;
    if (sscanf(line, "read %63s", name) == 1 && parse_clock(name, &clk)) {
      print_bracket("", read_bracket(clk), "");
      printf("\n");
    } else if (sscanf(line, "measure %63s %lld", name, &n1) == 2 && parse_clock(name, &clk)) {
      struct bracket start = best_bracket(clk);
      sleep_ns((int64_t)n1 * 1000000);
      struct bracket end = best_bracket(clk);
      print_bracket("", start, "0");
      print_bracket(" ", end, "1");
      printf("\n");
    } else if (sscanf(line, "monotonic-check %63s %lld", name, &n1) == 2 && parse_clock(name, &clk)) {
      clockid_t raw = raw_clock_of(clk);
      int64_t deadline = raw_ns(raw) + (int64_t)n1 * 1000000;
      int64_t first = vdso_ns(clk), last = first, maxback = 0, maxback_raw = 0;
      uint64_t reads = 1, backwards = 0;
      while ((reads & 1023) != 0 || raw_ns(raw) < deadline) {
        int64_t v = vdso_ns(clk);
        if (v < last) {
          backwards++;
          if (last - v > maxback) {
            maxback = last - v;
            maxback_raw = raw_ns(raw);
          }
        }
        last = v;
        reads++;
      }
      printf("reads=%" PRIu64 " backwards=%" PRIu64 " maxback=%" PRId64 " maxback_raw=%" PRId64 " first=%" PRId64
             " last=%" PRId64 "\n",
             reads, backwards, maxback, maxback_raw, first, last);
    } else if (sscanf(line, "freeze-check %63s %lld %lld", name, &n1, &n2) == 3 && parse_clock(name, &clk)) {
      clockid_t raw = raw_clock_of(clk);
      int64_t raw0 = raw_ns(raw);
      int64_t min = INT64_MAX, max = INT64_MIN;
      for (long long i = 0; i < n1; i++) {
        int64_t v = vdso_ns(clk);
        if (v < min) min = v;
        if (v > max) max = v;
        if (n2 > 0) sleep_ns((int64_t)n2 * 1000);
      }
      printf("reads=%lld min=%" PRId64 " max=%" PRId64 " rawspan=%" PRId64 "\n", n1, min, max, raw_ns(raw) - raw0);
    } else if (sscanf(line, "sample %63s %lld %lld", name, &n1, &n2) == 3 && parse_clock(name, &clk)) {
      printf("skews=");
      for (long long i = 0; i < n1; i++) {
        struct bracket r = read_bracket(clk);
        printf("%s%" PRId64, i == 0 ? "" : ",", r.v - (r.a + (r.b - r.a) / 2));
        if (n2 > 0) sleep_ns((int64_t)n2 * 1000);
      }
      printf("\n");
    } else if (sscanf(line, "spawn %lld", &n1) == 1) {
      fflush(stdout);
      pid_t pid = fork();
      if (pid == 0) {
        char ms[32];
        snprintf(ms, sizeof ms, "%lld", n1);
        execl("/proc/self/exe", argv[0], "--reporter", ms, "0", (char *)NULL);
        perror("model-victim: exec reporter");
        _exit(127);
      }
      if (pid < 0) printf("error fork failed\n");
      else printf("spawned %d\n", (int)pid);
    } else if (sscanf(line, "fork-reporter %lld", &n1) == 1) {
      fflush(stdout);
      pid_t pid = fork();
      if (pid == 0) _exit(reporter(argv[0], (long)n1, 0));  // no exec: keeps the parent's vDSO, skew and all
      if (pid < 0) printf("error fork failed\n");
      else printf("spawned %d\n", (int)pid);
    } else if (strcmp(line, "exec") == 0) {
      fflush(stdout);
      execl("/proc/self/exe", argv[0], (char *)NULL);
      printf("error exec failed: %s\n", strerror(errno));
    } else if (sscanf(line, "exit %lld", &n1) == 1) {
      _exit((int)n1);
    } else {
      printf("error unknown command: %s\n", line);
    }
    fflush(stdout);
  }
  return 0;
}
