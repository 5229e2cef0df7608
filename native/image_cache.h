// Work that depends only on a vDSO image's bytes, kept for the next target with the same image.
// Every process on a machine maps the same vDSO, so the hook plan and the unwind table are made
// once per kernel (and before the target is stopped), not inside every stop window: planning
// takes tens of microseconds, about what a whole stop of a one-thread target may cost.
#pragma once

#include <memory>
#include <vector>

#include "arch.h"
#include "elf_image.h"
#include "frame_table.h"

namespace timeskew {

// The unwind table of `image` (null when it has none that we can read).
std::shared_ptr<const FrameTable> frameTableFor(const VdsoImage& image);

#if defined(__x86_64__)
// The hook plan for a pristine image (no timeskew patch in it).
std::shared_ptr<const arch::HookPlan> hookPlanFor(const VdsoImage& pristine, bool forceSyscall);
#endif

}  // namespace timeskew
