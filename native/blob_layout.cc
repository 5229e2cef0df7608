#include "blob_layout.h"

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace timeskew {

namespace {

constexpr int64_t kNanosPerSecond = 1000000000;
// Longer than a publish takes (a few pwrites); the clock jumps forward by at most
// (old rate - new rate) * this when the new model takes over.
constexpr int64_t kSlowDownLeadNs = 500000;

// floor(value * rate / 2^32), exactly as the fake computes it (imul, then shrd by 32).
int64_t rateTerm(int64_t value, int64_t rate) {
  const __int128 product = static_cast<__int128>(value) * rate;
  return static_cast<int64_t>(product >> 32);
}

int64_t readClockNs(int clock) {
  struct timespec now;
  // CPU-time clocks are per process (or thread): their drift runs from zero, see toSlot.
  if (clock == CLOCK_PROCESS_CPUTIME_ID || clock == CLOCK_THREAD_CPUTIME_ID) return 0;
  // A raw syscall, not the vDSO: the caller's own clock may be skewed (a self-skewed test runner
  // skewing a server), and the anchor must be the real time.
  if (::syscall(SYS_clock_gettime, clock, &now) != 0) return 0;
  return static_cast<int64_t>(now.tv_sec) * kNanosPerSecond + now.tv_nsec;
}

void splitInto(int64_t nanos, int64_t& seconds, uint32_t& remainder) {
  int64_t whole = nanos / kNanosPerSecond;
  int64_t rest = nanos % kNanosPerSecond;
  if (rest < 0) {  // floor division, so that the nanosecond part is never negative
    rest += kNanosPerSecond;
    whole -= 1;
  }
  seconds = whole;
  remainder = static_cast<uint32_t>(rest);
}

int64_t joined(const ClockSlot& slot, int clock) {
  return slot.sec[clock] * kNanosPerSecond + static_cast<int64_t>(slot.nsec[clock]);
}

}  // namespace

int64_t skewAt(const ClockSlot& slot, int clock, int64_t nowNs) {
  if (!(slot.mask & (1u << clock))) return 0;
  return rateTerm(nowNs, slot.rate) + joined(slot, clock);
}

ClockSlot toSlot(const ClockTable& table, const ClockSlot* current) {
  ClockSlot slot{};
  slot.mask = table.mask;
  slot.rate = table.rate;
  for (int i = 0; i < kClockCount; ++i) {
    const uint32_t bit = 1u << i;
    if (!(table.mask & bit)) continue;
    // Anchor at this instant: fake(now) = now + skew, whatever the rate. A clock that keeps
    // running but slows down is anchored a little ahead: readers keep the old, faster model
    // until the slot is published a few microseconds later, and must not then see it step back.
    int64_t now = readClockNs(i);
    int64_t skew = table.offsetNs[i];
    if ((table.keepMask & bit) && current != nullptr) {
      if (table.rate < current->rate) now += kSlowDownLeadNs;
      skew = skewAt(*current, i, now);
    }
    if (table.absoluteMask & bit) skew = table.offsetNs[i] - now;
    splitInto(skew - rateTerm(now, table.rate), slot.sec[i], slot.nsec[i]);
  }
  slot.realtimeUsec = slot.nsec[0] / 1000;
  return slot;
}

ClockTable describeSlot(const ClockSlot& slot) {
  ClockTable table;
  table.mask = slot.mask;
  table.rate = slot.rate;
  for (int i = 0; i < kClockCount; ++i) table.offsetNs[i] = skewAt(slot, i, readClockNs(i));
  return table;
}

}  // namespace timeskew
