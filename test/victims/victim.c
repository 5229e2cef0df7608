// C victim for the timeskew tests. It reads every clock through glibc, which
// goes through the vDSO: exactly the code timeskew patches. A line protocol on
// stdin/stdout lets a test drive it; see test/support/victim.ts for the client.
//
// Commands (one reply line each, unless noted):
//   now                  -> realtime=<ns> monotonic=<ns> ... (see print_readings)
//   fork                 -> "child realtime=..." (printed by the child), then "forked <pid>"
//   exec                 -> "realtime=..." (printed by the exec'ed child), then "execed <pid>"
//   spin <n> <offset_ns> -> "spinning <n>"; n threads check vDSO time against raw syscalls
//   expect <offset_ns>   -> "ok"; the spinners also accept this offset from now on
//   stats                -> "reads=<n> bad=<n> first_bad=<desc|none>"
//   stop                 -> "stopped reads=<n> bad=<n>"
//   edge                 -> how the clock calls behave at their edges (see print_edges)
//   exit <code>          -> no reply, _exit(code)
//   EOF                  -> exit 0
// argv "--once": print one `now` line and exit 0 (the target of `exec`).
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_SEC 1000000000LL
#define SLACK_NS 2000000LL // 2 ms: syscall entry/exit and preemption between a, v and b
#define MAX_THREADS 64
#define MAX_OFFSETS 16

static int64_t ts_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * NS_PER_SEC + ts->tv_nsec; }

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0) return INT64_MIN; // clock not supported: make it obvious
  return ts_ns(&ts);
}

// Prefix is "" or "child " so a test can tell the fork child's line from a parent's reply.
static void print_readings(const char *prefix) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  int64_t gtod = (int64_t)tv.tv_sec * NS_PER_SEC + (int64_t)tv.tv_usec * 1000;
  int64_t t = (int64_t)time(NULL) * NS_PER_SEC;
  printf("%srealtime=%" PRId64 " monotonic=%" PRId64 " gettimeofday=%" PRId64 " time=%" PRId64
         " boottime=%" PRId64 " tai=%" PRId64 " realtime_coarse=%" PRId64 " monotonic_raw=%" PRId64 "\n",
         prefix, clock_ns(CLOCK_REALTIME), clock_ns(CLOCK_MONOTONIC), gtod, t, clock_ns(CLOCK_BOOTTIME),
         clock_ns(CLOCK_TAI), clock_ns(CLOCK_REALTIME_COARSE), clock_ns(CLOCK_MONOTONIC_RAW));
  fflush(stdout);
}

// ---- spinning checker -------------------------------------------------------

// Offsets a vDSO reading may legitimately carry. A skew change is not atomic
// with respect to the threads, so old and new offsets stay accepted; slot 0 is
// always 0 (the unskewed clock). Only the main thread writes; once full, the
// oldest non-zero slot is reused.
static _Atomic int64_t offsets[MAX_OFFSETS];
static atomic_int n_offsets = 1;
static int reuse_next;

static void add_offset(int64_t off) {
  int n = atomic_load(&n_offsets);
  for (int i = 0; i < n; i++)
    if (atomic_load(&offsets[i]) == off) return;
  if (n < MAX_OFFSETS) {
    atomic_store(&offsets[n], off);
    atomic_store(&n_offsets, n + 1); // publish after the value is in place
  } else {
    atomic_store(&offsets[1 + reuse_next++ % (MAX_OFFSETS - 1)], off);
  }
}

// Padded so the counters of different threads don't share a cache line.
struct spinner {
  pthread_t thread;
  _Atomic uint64_t reads, bad;
  char pad[64];
};
static struct spinner spinners[MAX_THREADS];
static int n_spinners;
static atomic_bool spinning;
static atomic_flag bad_claimed = ATOMIC_FLAG_INIT;
static char first_bad[256];       // written once, by the thread that wins bad_claimed
static atomic_bool first_bad_set; // then published, so `stats` never sees half a string

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// v is good if it lies in [a, b] (raw kernel time before and after) shifted by
// some accepted offset, with `slack` of tolerance.
static int in_window(int64_t v, int64_t a, int64_t b, int64_t slack) {
  int n = atomic_load(&n_offsets);
  for (int i = 0; i < n; i++) {
    int64_t off = atomic_load(&offsets[i]);
    if (a + off - slack <= v && v <= b + off + slack) return 1;
  }
  return 0;
}

// time() reads the coarse clock, which lags by up to a tick, so allow a second either way.
static int time_ok(int64_t t, int64_t a, int64_t b) {
  int n = atomic_load(&n_offsets);
  for (int i = 0; i < n; i++) {
    int64_t off = atomic_load(&offsets[i]);
    if (floor_div(a + off, NS_PER_SEC) - 1 <= t && t <= floor_div(b + off, NS_PER_SEC) + 1) return 1;
  }
  return 0;
}

static void report_bad(const char *what, int64_t a, int64_t v, int64_t b) {
  if (atomic_flag_test_and_set(&bad_claimed)) return;
  // No spaces: the whole description is one value of the `stats` line.
  snprintf(first_bad, sizeof first_bad, "%s:a=%" PRId64 ",v=%" PRId64 ",b=%" PRId64 ",v-a=%" PRId64, what, a, v,
           b, v - a);
  atomic_store(&first_bad_set, 1);
}

static void *spin_main(void *arg) {
  struct spinner *s = arg;
  while (atomic_load_explicit(&spinning, memory_order_relaxed)) {
    struct timespec ta, tv, tb;
    struct timeval gtv;
    // Raw syscalls bypass the vDSO, so a and b are the kernel's true time.
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &ta);
    clock_gettime(CLOCK_REALTIME, &tv);
    gettimeofday(&gtv, NULL);
    time_t t = time(NULL);
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &tb);
    int64_t a = ts_ns(&ta), b = ts_ns(&tb), v = ts_ns(&tv);
    int64_t g = (int64_t)gtv.tv_sec * NS_PER_SEC + (int64_t)gtv.tv_usec * 1000;
    int good = 1;
    if (!in_window(v, a, b, SLACK_NS)) report_bad("clock_gettime", a, v, b), good = 0;
    // gettimeofday truncates to microseconds: one more usec of slack below.
    if (!in_window(g, a, b, SLACK_NS + 1000)) report_bad("gettimeofday", a, g, b), good = 0;
    if (!time_ok((int64_t)t, a, b)) report_bad("time", a, (int64_t)t * NS_PER_SEC, b), good = 0;
    atomic_fetch_add_explicit(&s->reads, 1, memory_order_relaxed);
    if (!good) atomic_fetch_add_explicit(&s->bad, 1, memory_order_relaxed);
  }
  return NULL;
}

static void totals(uint64_t *reads, uint64_t *bad) {
  *reads = *bad = 0;
  for (int i = 0; i < n_spinners; i++) {
    *reads += atomic_load(&spinners[i].reads);
    *bad += atomic_load(&spinners[i].bad);
  }
}

static void stop_spinning(void) {
  atomic_store(&spinning, 0);
  for (int i = 0; i < n_spinners; i++) pthread_join(spinners[i].thread, NULL);
  // n_spinners is kept so `stats`/`stop` still report the finished run.
}

// A new `spin` starts a fresh run: counters, first_bad and offsets are reset.
static int start_spinning(int n, int64_t off) {
  stop_spinning();
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  atomic_store(&n_offsets, 1);
  reuse_next = 0;
  add_offset(off);
  atomic_store(&first_bad_set, 0);
  atomic_flag_clear(&bad_claimed);
  atomic_store(&spinning, 1);
  n_spinners = 0;
  for (int i = 0; i < n; i++) {
    atomic_store(&spinners[i].reads, 0);
    atomic_store(&spinners[i].bad, 0);
    if (pthread_create(&spinners[i].thread, NULL, spin_main, &spinners[i]) != 0) break;
    n_spinners++;
  }
  return n_spinners;
}

// ---- command loop -----------------------------------------------------------

static pid_t wait_child(pid_t pid) {
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  return pid;
}

// The corners a fake must get right: what the original returns for a bad clock id, NULL
// arguments, and clocks it must pass through untouched (CPU-time clocks, dynamic negative ids).
static void print_edges(void) {
  struct timespec ts;
  errno = 0;
  int bad_ret = clock_gettime((clockid_t)100, &ts);
  int bad_errno = errno;
  struct timezone tz;
  memset(&tz, 0x55, sizeof tz);
  struct timeval *volatile no_tv = NULL;  // glibc declares tv nonnull; the vDSO accepts NULL
  int gtod_null_ret = gettimeofday(no_tv, &tz);
  time_t stored = 0;
  time_t returned = time(&stored);
  clockid_t self_cpu;
  clock_getcpuclockid(0, &self_cpu);
  printf("bad_clock_ret=%d bad_clock_errno=%d gtod_null_tv_ret=%d tz_minuteswest=%d time_ret=%lld "
         "time_stored=%lld time_null=%lld process_cputime=%" PRId64 " thread_cputime=%" PRId64
         " dynamic_clock_id=%d dynamic_cputime=%" PRId64 "\n",
         bad_ret, bad_errno, gtod_null_ret, tz.tz_minuteswest, (long long)returned * NS_PER_SEC,
         (long long)stored * NS_PER_SEC, (long long)time(NULL) * NS_PER_SEC,
         clock_ns(CLOCK_PROCESS_CPUTIME_ID), clock_ns(CLOCK_THREAD_CPUTIME_ID), (int)self_cpu,
         clock_ns(self_cpu));
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--once") == 0) {
    print_readings("");
    return 0;
  }
  printf("ready %d\n", (int)getpid());
  fflush(stdout);

  char line[512];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    long long a1 = 0, a2 = 0;
    if (strcmp(line, "now") == 0) {
      print_readings("");
    } else if (strcmp(line, "edge") == 0) {
      print_edges();
    } else if (strcmp(line, "fork") == 0) {
      pid_t pid = fork(); // stdout is flushed after every line, so nothing is duplicated
      if (pid == 0) {
        print_readings("child ");
        _exit(0);
      }
      if (pid < 0) printf("error fork failed\n");
      else printf("forked %d\n", (int)wait_child(pid));
    } else if (strcmp(line, "exec") == 0) {
      pid_t pid = fork();
      if (pid == 0) {
        execl("/proc/self/exe", "victim-c", "--once", (char *)NULL);
        perror("victim-c: exec /proc/self/exe");
        _exit(127);
      }
      if (pid < 0) printf("error fork failed\n");
      else printf("execed %d\n", (int)wait_child(pid));
    } else if (sscanf(line, "spin %lld %lld", &a1, &a2) == 2) {
      printf("spinning %d\n", start_spinning((int)a1, (int64_t)a2));
    } else if (sscanf(line, "expect %lld", &a1) == 1) {
      add_offset((int64_t)a1);
      printf("ok\n");
    } else if (strcmp(line, "stats") == 0) {
      uint64_t reads, bad;
      totals(&reads, &bad);
      printf("reads=%" PRIu64 " bad=%" PRIu64 " first_bad=%s\n", reads, bad,
             atomic_load(&first_bad_set) ? first_bad : "none");
    } else if (strcmp(line, "stop") == 0) {
      stop_spinning();
      uint64_t reads, bad;
      totals(&reads, &bad);
      printf("stopped reads=%" PRIu64 " bad=%" PRIu64 "\n", reads, bad);
    } else if (sscanf(line, "exit %lld", &a1) == 1) {
      stop_spinning();
      _exit((int)a1);
    } else {
      printf("error unknown command: %s\n", line);
    }
    fflush(stdout);
  }
  stop_spinning();
  return 0;
}
