// Assembles the bytes written into the target: payload code, trampolines, header, clock slots.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "blob_layout.h"
#include "x86_64/planner.h"

namespace timeskew::x86_64 {

std::vector<uint8_t> buildBlob(const HookPlan& plan, const ClockTable& table, pid_t installer);

}  // namespace timeskew::x86_64
