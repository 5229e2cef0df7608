// Victim for the torture suite (test/torture/). Like victim.c it reads the clock through glibc,
// i.e. through the vDSO code timeskew patches, and checks every reading itself, so the verdict is
// the victim's own view. It is a separate program because victim.c caps its checker at 64
// threads and because the storms and the seccomp filter below do not belong in a general victim.
//
// Commands (one reply line each):
//   spin <n> <offset_ns> [burst]
//                          -> "spinning <n>"; n (<= 256) threads check every vDSO reading of
//                             clock_gettime/gettimeofday/time against raw syscalls before and
//                             after it: good = real, or real + an accepted offset. With a burst
//                             (<= 64, default 1) each thread makes that many rounds of vDSO calls
//                             between two raw syscalls, so it is nearly always inside the vDSO
//   expect <offset_ns>     -> "ok"; accept this offset too (a skew change is not atomic for the
//                             threads, so old and new offsets stay accepted)
//   stats                  -> "reads=<n> bad=<n> first_bad=<desc|none>"
//   stop                   -> "stopped reads=<n> bad=<n> first_bad=<desc|none>"
//   raw                    -> for clock ids 0..11: "c<id>=<vsec>:<vnsec>:<rsec>:<rnsec>" (vDSO
//                             reading, raw syscall just before; "c<id>=err:<errno>" if the vDSO
//                             call fails), "gtod=<sec>:<usec>:<rsec>:<rnsec>", "time=<t>:<rsec>"
//   seccomp                -> "seccomp ok"; from now on mmap, mprotect and munmap kill the whole
//                             process (every thread, SECCOMP_FILTER_FLAG_TSYNC)
//   tstorm <offset_ns>     -> "tstorm started"; a creator thread creates and joins threads
//                             without pause, 4 at a time; each new thread reads the clock 16 times
//                             and checks it against the phase in force when it was created
//   phase any|<offset_ns>  -> "phase ok"; the offset threads created from now on must see
//                             ("any": real or any accepted offset, for the time of an operation)
//   tstats                 -> "created=<n> checked=<n> bad=<n> first_bad=<desc|none>"
//   tstop                  -> like tstats, after the creator stopped
//   sigrecv                -> "sigrecv ok"; starts the only thread that takes SIGUSR1/SIGRTMIN
//   sigsend ack|rt|flood   -> "sigsend <pid>"; forks a sender process (see sender_main)
//   sigstop                -> "sigstopped sent=<n> handled=<n> waited_ms=<n>"
//   sigcount               -> "usr1=<n> rt=<n>" (handler counts)
//   zombie                 -> "zombie <pid>": a child that exited and is left unreaped
//   reap <pid>             -> "reaped <pid> <status>"
//   exit_in <us> <code>    -> "armed"; a thread calls _exit(code) after <us> microseconds
//   leader_exit            -> "leader exiting"; the main thread exits (pthread_exit) and another
//                             thread carries on: a live process whose leader is a zombie
//   exit <code>            -> no reply, _exit(code)
//   EOF                    -> exit 0
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_SEC 1000000000LL
#define SLACK_NS 2000000LL  // 2 ms: syscall entry/exit and preemption between a, v and b
#define MAX_THREADS 256
#define MAX_OFFSETS 16

static int64_t ts_ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * NS_PER_SEC + ts->tv_nsec; }

// Raw syscalls bypass the vDSO: the kernel's true time, whatever is installed.
static int64_t raw_ns(clockid_t id) {
  struct timespec ts;
  syscall(SYS_clock_gettime, id, &ts);
  return ts_ns(&ts);
}

static void sleep_us(int64_t us) {
  struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
  while (syscall(SYS_nanosleep, &ts, &ts) != 0 && errno == EINTR) {
  }
}

// ---- accepted offsets ---------------------------------------------------------
// Slot 0 is always 0 (the real clock). Only the main thread writes; once full, the oldest
// non-zero slot is reused.
static _Atomic int64_t offsets[MAX_OFFSETS];
static atomic_int n_offsets = 1;
static int reuse_next;

static void add_offset(int64_t off) {
  int n = atomic_load(&n_offsets);
  for (int i = 0; i < n; i++)
    if (atomic_load(&offsets[i]) == off) return;
  if (n < MAX_OFFSETS) {
    atomic_store(&offsets[n], off);
    atomic_store(&n_offsets, n + 1);  // publish after the value is in place
  } else {
    atomic_store(&offsets[1 + reuse_next++ % (MAX_OFFSETS - 1)], off);
  }
}

static int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

static int window_ok(int64_t v, int64_t a, int64_t b, int64_t off, int64_t slack) {
  return a + off - slack <= v && v <= b + off + slack;
}

// time() reads the coarse clock, which lags by up to a tick: a second of slack either way.
static int time_window_ok(int64_t t, int64_t a, int64_t b, int64_t off) {
  return floor_div(a + off, NS_PER_SEC) - 1 <= t && t <= floor_div(b + off, NS_PER_SEC) + 1;
}

// One reading: raw time a, then the three vDSO calls, then raw time b.
struct reading {
  int64_t a, v, g, t, b;
};

// A burst: raw a, then `n` rounds of clock_gettime/gettimeofday/time, then raw b. With long bursts
// a thread spends nearly all its time inside the vDSO (and the hook code), which is where an
// injector is most likely to catch it: in the bytes it rewrites, or where it must step it out.
#define MAX_BURST 64
static void take_burst(struct reading *r, int n) {
  struct timespec ta, tb;
  syscall(SYS_clock_gettime, CLOCK_REALTIME, &ta);
  for (int i = 0; i < n; i++) {
    struct timespec tv;
    struct timeval gtv;
    clock_gettime(CLOCK_REALTIME, &tv);
    gettimeofday(&gtv, NULL);
    r[i].v = ts_ns(&tv);
    r[i].g = (int64_t)gtv.tv_sec * NS_PER_SEC + (int64_t)gtv.tv_usec * 1000;
    r[i].t = (int64_t)time(NULL);
  }
  syscall(SYS_clock_gettime, CLOCK_REALTIME, &tb);
  for (int i = 0; i < n; i++) {
    r[i].a = ts_ns(&ta);
    r[i].b = ts_ns(&tb);
  }
}

static void take_reading(struct reading *r) { take_burst(r, 1); }

// Checks one reading against one offset, or (any) against every accepted offset.
// Returns NULL when good, else the name of the first call that read a bad value.
static const char *check_reading(const struct reading *r, int any, int64_t off) {
  int n = any ? atomic_load(&n_offsets) : 1;
  const char *bad = "clock_gettime";
  for (int pass = 0; pass < 3; pass++) {
    int ok = 0;
    for (int i = 0; i < n && !ok; i++) {
      int64_t o = any ? atomic_load(&offsets[i]) : off;
      if (pass == 0) ok = window_ok(r->v, r->a, r->b, o, SLACK_NS);
      // gettimeofday truncates to microseconds: one more usec of slack below.
      if (pass == 1) ok = window_ok(r->g, r->a, r->b, o, SLACK_NS + 1000);
      if (pass == 2) ok = time_window_ok(r->t, r->a, r->b, o);
    }
    if (!ok) return bad;
    bad = pass == 0 ? "gettimeofday" : "time";
  }
  return NULL;
}

// The first bad value of a run, written once by whoever wins the flag, then published.
struct first_bad {
  atomic_flag claimed;
  atomic_bool set;
  char text[256];
};

static void record_bad(struct first_bad *fb, const char *what, const struct reading *r) {
  if (atomic_flag_test_and_set(&fb->claimed)) return;
  int64_t v = strcmp(what, "clock_gettime") == 0 ? r->v : strcmp(what, "gettimeofday") == 0 ? r->g : r->t * NS_PER_SEC;
  // No spaces: the whole description is one value of a reply line.
  snprintf(fb->text, sizeof fb->text, "%s:a=%" PRId64 ",v=%" PRId64 ",b=%" PRId64 ",v-a=%" PRId64, what, r->a, v,
           r->b, v - r->a);
  atomic_store(&fb->set, 1);
}

static void reset_bad(struct first_bad *fb) {
  atomic_store(&fb->set, 0);
  atomic_flag_clear(&fb->claimed);
}

static const char *bad_text(struct first_bad *fb) { return atomic_load(&fb->set) ? fb->text : "none"; }

// ---- spinning checker ---------------------------------------------------------

struct spinner {
  pthread_t thread;
  _Atomic uint64_t reads, bad;
  char pad[64];  // keep the counters of different threads off one cache line
};
static struct spinner spinners[MAX_THREADS];
static int n_spinners;
static int spin_burst = 1;
static atomic_bool spinning;
static struct first_bad spin_bad = {ATOMIC_FLAG_INIT, 0, {0}};

static void *spin_main(void *arg) {
  struct spinner *s = arg;
  struct reading r[MAX_BURST];
  const int n = spin_burst;
  while (atomic_load_explicit(&spinning, memory_order_relaxed)) {
    take_burst(r, n);
    uint64_t bad = 0;
    for (int i = 0; i < n; i++) {
      const char *what = check_reading(&r[i], 1, 0);
      if (what) {
        record_bad(&spin_bad, what, &r[i]);
        bad++;
      }
    }
    atomic_fetch_add_explicit(&s->reads, (uint64_t)n, memory_order_relaxed);
    if (bad) atomic_fetch_add_explicit(&s->bad, bad, memory_order_relaxed);
  }
  return NULL;
}

static void spin_totals(uint64_t *reads, uint64_t *bad) {
  *reads = *bad = 0;
  for (int i = 0; i < n_spinners; i++) {
    *reads += atomic_load(&spinners[i].reads);
    *bad += atomic_load(&spinners[i].bad);
  }
}

static void stop_spinning(void) {
  atomic_store(&spinning, 0);
  for (int i = 0; i < n_spinners; i++) pthread_join(spinners[i].thread, NULL);
}

static int start_spinning(int n, int64_t off, int burst) {
  stop_spinning();
  spin_burst = burst < 1 ? 1 : burst > MAX_BURST ? MAX_BURST : burst;
  if (n < 1) n = 1;
  if (n > MAX_THREADS) n = MAX_THREADS;
  atomic_store(&n_offsets, 1);
  reuse_next = 0;
  add_offset(off);
  reset_bad(&spin_bad);
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

// ---- raw readings of every clock -------------------------------------------------

static void print_raw(void) {
  char out[2048];
  size_t at = 0;
  for (int id = 0; id < 12; id++) {
    struct timespec r, v;
    syscall(SYS_clock_gettime, id, &r);
    errno = 0;
    if (clock_gettime(id, &v) != 0) {
      at += snprintf(out + at, sizeof out - at, "c%d=err:%d ", id, errno);
      continue;
    }
    at += snprintf(out + at, sizeof out - at, "c%d=%lld:%ld:%lld:%ld ", id, (long long)v.tv_sec, v.tv_nsec,
                   (long long)r.tv_sec, r.tv_nsec);
  }
  struct timespec r;
  struct timeval tv;
  syscall(SYS_clock_gettime, CLOCK_REALTIME, &r);
  gettimeofday(&tv, NULL);
  at += snprintf(out + at, sizeof out - at, "gtod=%lld:%ld:%lld:%ld ", (long long)tv.tv_sec, (long)tv.tv_usec,
                 (long long)r.tv_sec, r.tv_nsec);
  syscall(SYS_clock_gettime, CLOCK_REALTIME, &r);
  time_t t = time(NULL);
  snprintf(out + at, sizeof out - at, "time=%lld:%lld", (long long)t, (long long)r.tv_sec);
  printf("%s\n", out);
}

// ---- seccomp: no mmap, mprotect, munmap -------------------------------------------

static int install_seccomp(void) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mprotect, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_munmap, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      // Kill rather than fail: an injector that needed one of these in the target would be
      // noticed at once (the victim dies), not hidden behind an error it might retry around.
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
  };
  struct sock_fprog prog = {(unsigned short)(sizeof filter / sizeof filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
}

// ---- thread storm --------------------------------------------------------------
// A creator thread creates and joins threads continuously. Each new thread checks its readings
// against the phase captured when it was created: after the test has seen skewClock() resolve it
// sets the phase to the offset, and from then on every new thread must read exactly that.

#define STORM_BATCH 4
#define STORM_READS 16
#define PHASE_ANY INT64_MIN

static _Atomic int64_t phase = PHASE_ANY;
static atomic_bool storming;
static pthread_t storm_creator;
static int storm_running;
static _Atomic uint64_t storm_created, storm_checked, storm_bad;
static struct first_bad storm_first_bad = {ATOMIC_FLAG_INIT, 0, {0}};

// A worker may still be reading when the test moves on to the next phase (it only waits for
// threads to be created): a reading is held to the creation phase only while that phase is still
// in force after the reading; otherwise real or skewed are both fine.
static _Atomic uint64_t phase_generation;

struct storm_order {
  int64_t required;
  uint64_t generation;
};

static void *storm_worker(void *arg) {
  struct storm_order order = *(struct storm_order *)arg;
  free(arg);
  for (int i = 0; i < STORM_READS; i++) {
    struct reading r;
    take_reading(&r);
    const int still = atomic_load(&phase_generation) == order.generation;
    const char *bad = order.required == PHASE_ANY || !still ? check_reading(&r, 1, order.required == PHASE_ANY ? 0 : order.required)
                                                            : check_reading(&r, 0, order.required);
    if (bad) {
      record_bad(&storm_first_bad, bad, &r);
      atomic_fetch_add(&storm_bad, 1);
    }
    atomic_fetch_add(&storm_checked, 1);
  }
  return NULL;
}

static void *storm_main(void *arg) {
  (void)arg;
  while (atomic_load(&storming)) {
    pthread_t batch[STORM_BATCH];
    int n = 0;
    for (int i = 0; i < STORM_BATCH; i++) {
      struct storm_order *order = malloc(sizeof *order);
      if (!order) break;
      // Phase and generation read consistently: the generation changes after the phase.
      do {
        order->generation = atomic_load(&phase_generation);
        order->required = atomic_load(&phase);
      } while (atomic_load(&phase_generation) != order->generation);
      if (pthread_create(&batch[n], NULL, storm_worker, order) == 0) {
        n++;
      } else {
        free(order);
      }
    }
    for (int i = 0; i < n; i++) pthread_join(batch[i], NULL);
    atomic_fetch_add(&storm_created, (uint64_t)n);
  }
  return NULL;
}

static void print_storm(const char *prefix) {
  printf("%screated=%" PRIu64 " checked=%" PRIu64 " bad=%" PRIu64 " first_bad=%s\n", prefix,
         atomic_load(&storm_created), atomic_load(&storm_checked), atomic_load(&storm_bad),
         bad_text(&storm_first_bad));
}

// ---- signal storm ----------------------------------------------------------------
// Counters live in shared memory so that the sender (a forked process) can wait for the
// handler. Only the receiver thread takes the storm signals: the spinners, the main thread and
// the storm threads block them, so a handler never runs on top of a thread that is inside a vDSO
// function (see the README's limits: such a thread's interrupted context is on its stack).

struct sigshared {
  _Atomic uint64_t usr1, rt;  // handler runs
  _Atomic uint32_t usr1_seq;  // futex word: bumped by every SIGUSR1 handler run
  _Atomic uint64_t sent;      // successful kill()/sigqueue() calls by the sender
  _Atomic int stop;           // set by the main thread: the sender finishes
  _Atomic uint64_t lost;      // ack mode: signals the handler never saw within 5 s
};
static struct sigshared *shared;
static pid_t sender_pid;
static int sender_coalesces;  // flood mode: standard signals merge while pending
static atomic_bool receiving;
static pthread_t receiver;

static void on_usr1(int sig) {
  (void)sig;
  atomic_fetch_add_explicit(&shared->usr1, 1, memory_order_relaxed);
  atomic_fetch_add(&shared->usr1_seq, 1);
  // Wake an acknowledging sender (a shared, not private, futex: it is another process).
  syscall(SYS_futex, &shared->usr1_seq, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void on_rt(int sig) {
  (void)sig;
  atomic_fetch_add_explicit(&shared->rt, 1, memory_order_relaxed);
}

static void storm_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGUSR1);
  sigaddset(set, SIGRTMIN);
}

// Waits for the storm signals in sigsuspend, so that a signal wakes it at once and is handled
// within microseconds (a busy receiver would only get a time slice every few milliseconds
// among the spinners, capping the storm far below thousands per second).
static void *receiver_main(void *arg) {
  (void)arg;
  sigset_t open;
  pthread_sigmask(SIG_BLOCK, NULL, &open);
  sigdelset(&open, SIGUSR1);
  sigdelset(&open, SIGRTMIN);
  while (atomic_load_explicit(&receiving, memory_order_relaxed)) sigsuspend(&open);
  return NULL;
}

static int64_t mono_ms(void) { return raw_ns(CLOCK_MONOTONIC) / 1000000; }

// The sender: a forked copy with one thread, so only async-signal-safe calls and raw syscalls.
//   ack:   send SIGUSR1, wait until the handler has run, repeat. Nothing can coalesce, so every
//          signal sent must be handled exactly once; one not handled within 5 s counts as lost
//          (and ends the run, since it would otherwise count every later one twice).
//   rt:    sigqueue SIGRTMIN as fast as the queue takes them (real-time signals queue, never
//          coalesce), backing off when the queue is full (EAGAIN is not counted as sent).
//   flood: kill SIGUSR1 as fast as possible. Standard signals coalesce while pending, so only
//          handled <= sent can hold; the test checks a final acknowledged signal on top.
static void sender_main(pid_t target, const char *mode) {
  const int ack = strcmp(mode, "ack") == 0, rt = strcmp(mode, "rt") == 0;
  while (!atomic_load(&shared->stop)) {
    int r = rt ? sigqueue(target, SIGRTMIN, (union sigval){0}) : kill(target, SIGUSR1);
    if (r != 0) {
      if (errno == EAGAIN) {
        sched_yield();
        continue;
      }
      _exit(3);
    }
    uint64_t sent = atomic_fetch_add(&shared->sent, 1) + 1;
    if (!ack) continue;
    int64_t deadline = mono_ms() + 5000;
    for (;;) {
      uint32_t seq = atomic_load(&shared->usr1_seq);
      if (atomic_load(&shared->usr1) >= sent) break;
      if (mono_ms() > deadline) {
        atomic_fetch_add(&shared->lost, 1);
        _exit(4);
      }
      struct timespec wait = {0, 100000000};  // re-check at least every 100 ms
      syscall(SYS_futex, &shared->usr1_seq, FUTEX_WAIT, seq, &wait, NULL, 0);
    }
  }
  _exit(0);
}

static int start_sender(const char *mode) {
  atomic_store(&shared->usr1, 0);
  atomic_store(&shared->rt, 0);
  atomic_store(&shared->sent, 0);
  atomic_store(&shared->stop, 0);
  atomic_store(&shared->lost, 0);
  sender_coalesces = strcmp(mode, "flood") == 0;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    sender_main(parent, mode);
  }
  sender_pid = pid;
  return pid;
}

// Stops the sender, then waits (up to 5 s) until every signal it managed to send was handled
// (after a flood, where signals merge, only until the count stops moving).
static void stop_sender(void) {
  atomic_store(&shared->stop, 1);
  int status = 0;
  if (sender_pid > 0) {
    while (waitpid(sender_pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  sender_pid = 0;
  int64_t start = mono_ms();
  uint64_t sent = atomic_load(&shared->sent);
  uint64_t seen = UINT64_MAX;
  while (atomic_load(&shared->usr1) + atomic_load(&shared->rt) < sent && mono_ms() - start < 5000) {
    uint64_t now = atomic_load(&shared->usr1) + atomic_load(&shared->rt);
    if (sender_coalesces && now == seen) break;
    seen = now;
    sleep_us(sender_coalesces ? 20000 : 1000);
  }
  printf("sigstopped sent=%" PRIu64 " handled=%" PRIu64 " usr1=%" PRIu64 " rt=%" PRIu64 " lost=%" PRIu64
         " sender_status=%d waited_ms=%lld\n",
         sent, atomic_load(&shared->usr1) + atomic_load(&shared->rt), atomic_load(&shared->usr1),
         atomic_load(&shared->rt), atomic_load(&shared->lost), status, (long long)(mono_ms() - start));
}

// ---- exits ----------------------------------------------------------------------

static int64_t exit_delay_us;
static int exit_code;

static void *exit_main(void *arg) {
  (void)arg;
  sleep_us(exit_delay_us);
  _exit(exit_code);
}

static pthread_t main_thread;
static void *command_loop(void *arg);

int main(void) {
  // Block the storm signals before any thread exists: every thread inherits the mask, and only
  // the receiver unblocks them.
  sigset_t storm;
  storm_signals(&storm);
  pthread_sigmask(SIG_BLOCK, &storm, NULL);
  shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_flags = SA_RESTART;
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_rt;
  sigaction(SIGRTMIN, &sa, NULL);

  main_thread = pthread_self();
  printf("ready %d\n", (int)getpid());
  fflush(stdout);
  command_loop(NULL);
  stop_spinning();
  return 0;
}

// The command loop: run by the main thread, or after `leader_exit` by the thread that took over.
static void *command_loop(void *arg) {
  (void)arg;
  char line[512];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    long long a1 = 0, a2 = 0, a3 = 1;
    char word[32];
    if (sscanf(line, "spin %lld %lld %lld", &a1, &a2, &a3) >= 2) {
      printf("spinning %d\n", start_spinning((int)a1, (int64_t)a2, (int)a3));
    } else if (sscanf(line, "expect %lld", &a1) == 1) {
      add_offset((int64_t)a1);
      printf("ok\n");
    } else if (strcmp(line, "stats") == 0 || strcmp(line, "stop") == 0) {
      const int stop = strcmp(line, "stop") == 0;
      if (stop) stop_spinning();
      uint64_t reads, bad;
      spin_totals(&reads, &bad);
      printf("%sreads=%" PRIu64 " bad=%" PRIu64 " first_bad=%s\n", stop ? "stopped " : "", reads, bad,
             bad_text(&spin_bad));
    } else if (strcmp(line, "raw") == 0) {
      print_raw();
    } else if (strcmp(line, "seccomp") == 0) {
      printf(install_seccomp() == 0 ? "seccomp ok\n" : "error seccomp %d\n", errno);
    } else if (sscanf(line, "tstorm %lld", &a1) == 1) {
      add_offset((int64_t)a1);
      if (!storm_running) {
        atomic_store(&storming, 1);
        storm_running = pthread_create(&storm_creator, NULL, storm_main, NULL) == 0;
      }
      printf(storm_running ? "tstorm started\n" : "error tstorm\n");
    } else if (strcmp(line, "phase any") == 0) {
      atomic_store(&phase, PHASE_ANY);
      atomic_fetch_add(&phase_generation, 1);
      printf("phase ok\n");
    } else if (sscanf(line, "phase %lld", &a1) == 1) {
      atomic_store(&phase, (int64_t)a1);
      atomic_fetch_add(&phase_generation, 1);
      printf("phase ok\n");
    } else if (strcmp(line, "tstats") == 0) {
      print_storm("");
    } else if (strcmp(line, "tstop") == 0) {
      atomic_store(&storming, 0);
      if (storm_running) pthread_join(storm_creator, NULL);
      storm_running = 0;
      print_storm("tstopped ");
    } else if (strcmp(line, "sigrecv") == 0) {
      if (!atomic_load(&receiving)) {
        atomic_store(&receiving, 1);
        if (pthread_create(&receiver, NULL, receiver_main, NULL) != 0) atomic_store(&receiving, 0);
      }
      printf(atomic_load(&receiving) ? "sigrecv ok\n" : "error sigrecv\n");
    } else if (sscanf(line, "sigsend %31s", word) == 1) {
      printf("sigsend %d\n", start_sender(word));
    } else if (strcmp(line, "sigstop") == 0) {
      stop_sender();
    } else if (strcmp(line, "sigcount") == 0) {
      printf("usr1=%" PRIu64 " rt=%" PRIu64 "\n", atomic_load(&shared->usr1), atomic_load(&shared->rt));
    } else if (strcmp(line, "zombie") == 0) {
      pid_t pid = fork();
      if (pid == 0) _exit(3);
      printf("zombie %d\n", (int)pid);
    } else if (sscanf(line, "reap %lld", &a1) == 1) {
      int status = 0;
      pid_t got = waitpid((pid_t)a1, &status, 0);
      printf("reaped %d %d\n", (int)got, got > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    } else if (sscanf(line, "exit_in %lld %lld", &a1, &a2) == 2) {
      exit_delay_us = a1;
      exit_code = (int)a2;
      pthread_t t;
      printf(pthread_create(&t, NULL, exit_main, NULL) == 0 ? "armed\n" : "error exit_in\n");
    } else if (strcmp(line, "leader_exit") == 0 && pthread_equal(pthread_self(), main_thread)) {
      // The main thread leaves; another thread carries on. The process lives on, but its thread
      // group leader shows as a zombie (state Z) in /proc/PID/stat.
      // Reply first: once the other thread runs it may handle later commands (even `exit`)
      // before this one would get to print.
      printf("leader exiting\n");
      fflush(stdout);
      pthread_t next;
      if (pthread_create(&next, NULL, command_loop, NULL) == 0) pthread_exit(NULL);
      printf("error leader_exit\n");
    } else if (sscanf(line, "exit %lld", &a1) == 1) {
      _exit((int)a1);
    } else {
      printf("error unknown command: %s\n", line);
    }
    fflush(stdout);
  }
  stop_spinning();
  exit(0);
}
