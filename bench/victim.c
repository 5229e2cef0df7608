// Benchmark victim for `npm run bench` (bench/src/main.ts drives it over a pipe).
//
// It times its own calls: every measurement is bracketed by raw `syscall` instructions reading
// CLOCK_THREAD_CPUTIME_ID and CLOCK_MONOTONIC_RAW, which neither the vDSO patch nor an LD_PRELOAD
// library (libfaketime) can see, so the same binary measures native, timeskew and libfaketime
// alike. The thread's CPU time is what the cost is computed from: on a shared machine, the time
// the loop spends preempted by other tenants is not the cost of the calls.
//
// Usage:  victim [--detach] MODE...
//   --detach            fork, and let the child run MODE while this process stays its (reaping)
//                       parent: the target is then NOT a child of the bench, so timeskew runs
//                       in-process instead of through its forked helper.
//   --setsid            the same, in a new session: with CONFIG_SCHED_AUTOGROUP the target's threads
//                       then compete for the CPU as one group, like a server in another cgroup.
//   serve               command loop (below), one reply line per command
//   threads N sleep     N threads in all (main included) blocked; main answers commands
//   threads N spin      N threads in all spinning on clock_gettime(CLOCK_REALTIME); the main thread
//                       spins too and polls stdin between batches for commands
//   idle                pause() until killed or the parent dies
//   farm N              (with --detach) start N idle children, print "pid <p>" for each, "ready",
//                       then wait until stdin closes and kill them all
// Every mode first prints "ready <pid>" (farm: after its pids) and exits when stdin closes or the
// parent dies (PR_SET_PDEATHSIG).
//
// Commands:
//   cost FN CALLS REPS  -> "cost FN <cpu ns/call>,... wall <wall ns/call>,..."
//                          FN: realtime monotonic gettimeofday time
//   now                 -> "now realtime=<ns> monotonic=<ns> gettimeofday=<ns> time=<s>
//                           raw_realtime=<ns> raw_monotonic=<ns>"
//   spin1               -> "spin1 started": one extra thread spinning on the clock, tracking gaps
//   gapreset            -> "gapreset": restart the max-gap record of every spinning thread
//   gap                 -> "gap <max ns between two consecutive clock reads of any spinning thread>"
//   quit                -> exit 0
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_SEC ((int64_t)1000000000)

// clock_gettime through the `syscall` instruction itself: no libc wrapper, no vDSO.
static int64_t raw_clock_ns(clockid_t id) {
  struct timespec ts;
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "0"((long)SYS_clock_gettime), "D"((long)id), "S"(&ts)
                   : "rcx", "r11", "memory");
  if (ret != 0) return -1;
  return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static int64_t ts_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * NS_PER_SEC + ts->tv_nsec; }

static volatile uint64_t sink;

// ---- per-call cost -----------------------------------------------------------------------

struct cost {
  double cpu_ns, wall_ns;  // per call
};

#define BRACKET_START()                                \
  int64_t wall0 = raw_clock_ns(CLOCK_MONOTONIC_RAW);   \
  int64_t cpu0 = raw_clock_ns(CLOCK_THREAD_CPUTIME_ID)
#define BRACKET_END()                                  \
  int64_t cpu1 = raw_clock_ns(CLOCK_THREAD_CPUTIME_ID); \
  int64_t wall1 = raw_clock_ns(CLOCK_MONOTONIC_RAW);   \
  out.cpu_ns = (double)(cpu1 - cpu0) / (double)calls;  \
  out.wall_ns = (double)(wall1 - wall0) / (double)calls

static struct cost measure(const char *fn, long calls) {
  struct cost out = {-1, -1};
  uint64_t acc = 0;
  if (strcmp(fn, "realtime") == 0 || strcmp(fn, "monotonic") == 0) {
    clockid_t id = fn[0] == 'r' ? CLOCK_REALTIME : CLOCK_MONOTONIC;
    struct timespec ts;
    BRACKET_START();
    for (long i = 0; i < calls; i++) {
      clock_gettime(id, &ts);
      acc += (uint64_t)ts.tv_nsec;
    }
    BRACKET_END();
  } else if (strcmp(fn, "gettimeofday") == 0) {
    struct timeval tv;
    BRACKET_START();
    for (long i = 0; i < calls; i++) {
      gettimeofday(&tv, NULL);
      acc += (uint64_t)tv.tv_usec;
    }
    BRACKET_END();
  } else if (strcmp(fn, "time") == 0) {
    BRACKET_START();
    for (long i = 0; i < calls; i++) acc += (uint64_t)time(NULL);
    BRACKET_END();
  }
  sink += acc;
  return out;
}

static void cmd_cost(const char *fn, long calls, int reps) {
  char cpu[2048], wall[2048];
  int ac = 0, aw = 0;
  if (calls < 1) calls = 1;
  if (reps < 1) reps = 1;
  if (reps > 64) reps = 64;
  for (int r = 0; r < reps; r++) {
    struct cost c = measure(fn, calls);
    ac += snprintf(cpu + ac, sizeof cpu - ac, "%s%.4f", r ? "," : "", c.cpu_ns);
    aw += snprintf(wall + aw, sizeof wall - aw, "%s%.4f", r ? "," : "", c.wall_ns);
  }
  printf("cost %s %s wall %s\n", fn, cpu, wall);
}

static void cmd_now(void) {
  struct timespec rt, mono;
  struct timeval tv;
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  gettimeofday(&tv, NULL);
  time_t t = time(NULL);
  printf("now realtime=%" PRId64 " monotonic=%" PRId64 " gettimeofday=%" PRId64 " time=%" PRId64
         " raw_realtime=%" PRId64 " raw_monotonic=%" PRId64 "\n",
         ts_ns(&rt), ts_ns(&mono), (int64_t)tv.tv_sec * NS_PER_SEC + (int64_t)tv.tv_usec * 1000, (int64_t)t,
         raw_clock_ns(CLOCK_REALTIME), raw_clock_ns(CLOCK_MONOTONIC));
}

// ---- spinning threads --------------------------------------------------------------------

// One record per spinning thread, padded so that counters never share a cache line.
struct spinner {
  _Atomic int64_t max_gap;
  _Atomic int reset;
  char pad[64 - sizeof(int64_t) - sizeof(int)];
};

#define MAX_SPINNERS 4096
static struct spinner spinners[MAX_SPINNERS];
static atomic_int n_spinners;

// Spins on clock_gettime(CLOCK_REALTIME) (the skewed clock, through the hooked entry) and records
// the longest gap between two consecutive CLOCK_MONOTONIC reads (unskewed, same hooked entry): a
// thread that was stopped, even once, shows the stop as a gap.
static inline void spin_step(struct spinner *s, int64_t *last) {
  struct timespec rt, mono;
  clock_gettime(CLOCK_REALTIME, &rt);
  clock_gettime(CLOCK_MONOTONIC, &mono);
  sink += (uint64_t)rt.tv_nsec;
  int64_t now = ts_ns(&mono);
  if (atomic_load_explicit(&s->reset, memory_order_relaxed)) {
    atomic_store_explicit(&s->reset, 0, memory_order_relaxed);
    atomic_store_explicit(&s->max_gap, 0, memory_order_relaxed);
  } else if (*last != 0 && now - *last > atomic_load_explicit(&s->max_gap, memory_order_relaxed)) {
    atomic_store_explicit(&s->max_gap, now - *last, memory_order_relaxed);
  }
  *last = now;
}

static struct spinner *new_spinner(void) {
  int i = atomic_fetch_add(&n_spinners, 1);
  return i < MAX_SPINNERS ? &spinners[i] : &spinners[MAX_SPINNERS - 1];
}

// Spinners are created asleep and released together, by one futex wake: a main thread creating
// threads while hundreds of others already spin beside it (or handing a mutex from one woken
// thread to the next) would take minutes on a loaded machine.
static _Atomic int gate_open;

static void open_gate(void) {
  atomic_store(&gate_open, 1);
  syscall(SYS_futex, &gate_open, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void wait_gate(void) {
  while (!atomic_load(&gate_open)) syscall(SYS_futex, &gate_open, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

static void *spin_main(void *arg) {
  (void)arg;
  wait_gate();
  struct spinner *s = new_spinner();
  int64_t last = 0;
  for (;;) spin_step(s, &last);
  return NULL;
}

static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cond = PTHREAD_COND_INITIALIZER;

static void *sleep_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&sleep_lock);
  for (;;) pthread_cond_wait(&sleep_cond, &sleep_lock);
  return NULL;
}

static int start_threads(int n, void *(*main_fn)(void *)) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  int started = 0;
  for (int i = 0; i < n; i++) {
    pthread_t t;
    if (pthread_create(&t, &attr, main_fn, NULL) != 0) break;
    pthread_detach(t);
    started++;
  }
  pthread_attr_destroy(&attr);
  return started;
}

static int64_t max_gap(void) {
  int n = atomic_load(&n_spinners);
  if (n > MAX_SPINNERS) n = MAX_SPINNERS;
  int64_t best = 0;
  for (int i = 0; i < n; i++) {
    int64_t g = atomic_load(&spinners[i].max_gap);
    if (g > best) best = g;
  }
  return best;
}

static void gap_reset(void) {
  int n = atomic_load(&n_spinners);
  if (n > MAX_SPINNERS) n = MAX_SPINNERS;
  for (int i = 0; i < n; i++) atomic_store(&spinners[i].reset, 1);
}

// ---- commands ------------------------------------------------------------------------------

// Returns 0 to keep going, 1 to exit.
static int handle(char *line) {
  char fn[32];
  long calls;
  int reps;
  if (sscanf(line, "cost %31s %ld %d", fn, &calls, &reps) == 3) {
    cmd_cost(fn, calls, reps);
  } else if (strncmp(line, "now", 3) == 0) {
    cmd_now();
  } else if (strncmp(line, "spin1", 5) == 0) {
    open_gate();
    start_threads(1, spin_main);
    printf("spin1 started\n");
  } else if (strncmp(line, "gapreset", 8) == 0) {
    gap_reset();
    // Let every spinner see the flag at least once before the caller starts its window.
    usleep(2000);
    printf("gapreset\n");
  } else if (strncmp(line, "gap", 3) == 0) {
    printf("gap %" PRId64 "\n", max_gap());
  } else if (strncmp(line, "quit", 4) == 0) {
    return 1;
  } else {
    printf("error unknown command\n");
  }
  fflush(stdout);
  return 0;
}

static int serve(void) {
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    if (handle(line)) return 0;
  }
  return 0;
}

// The main thread of a spinning target: spins like the others, and between batches looks for a
// command without blocking, so the process really has N spinning threads and nothing else.
static int spin_serve(void) {
  struct spinner *s = new_spinner();
  int64_t last = 0;
  char buffer[256];
  size_t used = 0;
  for (;;) {
    for (int i = 0; i < 4096; i++) spin_step(s, &last);
    struct pollfd p = {.fd = 0, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0) continue;
    ssize_t n = read(0, buffer + used, sizeof buffer - 1 - used);
    if (n <= 0) return 0;
    used += (size_t)n;
    buffer[used] = '\0';
    char *newline;
    while ((newline = strchr(buffer, '\n')) != NULL) {
      *newline = '\0';
      if (handle(buffer)) return 0;
      size_t rest = used - (size_t)(newline + 1 - buffer);
      memmove(buffer, newline + 1, rest);
      used = rest;
      buffer[used] = '\0';
    }
    last = 0;  // the time spent answering is not a gap caused by anyone else
  }
}

static void ready(void) {
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
}

static int farm(int n) {
  pid_t *pids = calloc((size_t)(n > 0 ? n : 1), sizeof *pids);
  int started = 0;
  for (int i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0) break;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      for (;;) pause();
    }
    pids[started++] = pid;
    printf("pid %d\n", (int)pid);
  }
  ready();
  char c;
  for (;;) {
    ssize_t got = read(0, &c, 1);
    if (got == 0 || (got < 0 && errno != EINTR)) break;
  }
  for (int i = 0; i < started; i++) kill(pids[i], SIGKILL);
  for (int i = 0; i < started; i++) waitpid(pids[i], NULL, 0);
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The bench's JavaScript thread runs at nice -10 and we inherit that: targets run at nice 0,
  // like the processes they stand for (and like the engine's threads).
  setpriority(PRIO_PROCESS, 0, 0);
  int arg = 1;
  if (arg < argc && (strcmp(argv[arg], "--detach") == 0 || strcmp(argv[arg], "--setsid") == 0)) {
    if (strcmp(argv[arg], "--setsid") == 0) setsid();
    arg++;
    pid_t child = fork();
    if (child < 0) return 2;
    if (child > 0) {
      // The launcher: stays the child's parent so that it is reaped (and dies with us).
      int status = 0;
      while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      if (WIFSIGNALED(status)) {
        // Say how the target died: the bench reports it (a crash is a finding, not noise).
        fprintf(stderr, "target %d killed by signal %d (%s)\n", (int)child, WTERMSIG(status), strsignal(WTERMSIG(status)));
        return 128 + WTERMSIG(status);
      }
      return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
  }
  if (arg >= argc) return 2;
  const char *mode = argv[arg];
  if (strcmp(mode, "serve") == 0) {
    ready();
    return serve();
  }
  if (strcmp(mode, "idle") == 0) {
    ready();
    for (;;) pause();
  }
  if (strcmp(mode, "farm") == 0 && arg + 1 < argc) return farm(atoi(argv[arg + 1]));
  if (strcmp(mode, "threads") == 0 && arg + 2 < argc) {
    int n = atoi(argv[arg + 1]);
    int spin = strcmp(argv[arg + 2], "spin") == 0;
    if (n < 1) n = 1;
    int started = start_threads(n - 1, spin ? spin_main : sleep_main);
    if (started != n - 1) {
      fprintf(stderr, "started only %d of %d threads\n", started, n - 1);
      return 3;
    }
    // The threads exist now (the bench checks /proc/PID/task); the spinners start as they get a CPU.
    if (spin) open_gate();
    ready();
    return spin ? spin_serve() : serve();
  }
  return 2;
}
