// Publishing a clock table into a blob already in the target, without stopping it: the one
// crash-safe sequence shared by install-over-existing-code, updateSkew and the fast update.
#pragma once

#include <cstdint>

#include "blob_layout.h"
#include "status.h"
#include "target_memory.h"

namespace timeskew {

// `state` holds the blob's first TS_SLOTS_OFFSET + 2 * TS_SLOT_SIZE bytes as read from the
// target at `base`. Fills the inactive slot, then flips the control word (see blob_layout.h):
// each write leaves a consistent state if we die right after it. `published` receives the slot
// made live.
Status publishTable(TargetMemoryWriter& writer, uint64_t base, const uint8_t* state,
                    const ClockTable& table, ClockSlot& published);

}  // namespace timeskew
