#include "blob_layout.h"

namespace timeskew {

namespace {
constexpr int64_t kNanosPerSecond = 1000000000;
}

ClockSlot toSlot(const ClockTable& table) {
  ClockSlot slot{};
  slot.mask = table.mask;
  for (int i = 0; i < kClockCount; ++i) {
    int64_t seconds = table.offsetNs[i] / kNanosPerSecond;
    int64_t nanos = table.offsetNs[i] % kNanosPerSecond;
    if (nanos < 0) {  // floor division, so that the nanosecond part is never negative
      nanos += kNanosPerSecond;
      seconds -= 1;
    }
    slot.sec[i] = seconds;
    slot.nsec[i] = static_cast<uint32_t>(nanos);
  }
  slot.realtimeUsec = slot.nsec[0] / 1000;
  return slot;
}

ClockTable fromSlot(const ClockSlot& slot) {
  ClockTable table;
  table.mask = slot.mask;
  for (int i = 0; i < kClockCount; ++i) {
    table.offsetNs[i] = slot.sec[i] * kNanosPerSecond + static_cast<int64_t>(slot.nsec[i]);
  }
  return table;
}

}  // namespace timeskew
