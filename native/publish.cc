#include "publish.h"

#include <cerrno>
#include <cstring>

namespace timeskew {

Status publishTable(TargetMemoryWriter& writer, uint64_t base, const uint8_t* state,
                    const ClockTable& table, ClockSlot& published) {
  uint64_t control;
  uint32_t quickMask;
  std::memcpy(&control, state + TS_CONTROL_OFFSET, sizeof control);
  std::memcpy(&quickMask, state + TS_QUICK_MASK_OFFSET, sizeof quickMask);
  ClockSlot current;
  std::memcpy(&current, state + TS_SLOTS_OFFSET + (control & 1) * TS_SLOT_SIZE, sizeof current);
  const uint64_t inactive = (control & 1) ^ 1;
  const uint64_t nextControl = (((control >> 1) + 1) << 1) | inactive;
  const ClockSlot slot = toSlot(table, &current);
  // During the switch the quick mask holds both sets of clocks. A mask write that would store the
  // value already there is skipped: with the same clocks (the usual update) that halves the
  // writes, and the states in between are the same.
  const uint32_t unionMask = quickMask | table.mask;
  if ((unionMask != quickMask &&
       !writer.write(base + TS_QUICK_MASK_OFFSET, &unionMask, sizeof unionMask)) ||
      !writer.write(base + TS_SLOTS_OFFSET + inactive * TS_SLOT_SIZE, &slot, sizeof slot) ||
      !writer.write(base + TS_CONTROL_OFFSET, &nextControl, sizeof nextControl) ||
      (table.mask != unionMask &&
       !writer.write(base + TS_QUICK_MASK_OFFSET, &table.mask, sizeof table.mask))) {
    return systemFailure(errno, "pwrite", "updating the offsets");
  }
  published = slot;
  return Status::success();
}

}  // namespace timeskew
