// The architecture-specific pieces the engine needs, chosen at compile time. Only x86_64 is
// implemented; elsewhere `kSupported` is false and every operation reports ENOTSUP.
#pragma once

#if defined(__x86_64__)
#include "x86_64/planner.h"
#include "x86_64/payload.h"
#include "x86_64/registers.h"
#include "x86_64/in_flight.h"
#include "x86_64/blob_builder.h"
namespace timeskew::arch {
using namespace timeskew::x86_64;
constexpr bool kSupported = true;
constexpr const char* kName = "x64";
}  // namespace timeskew::arch
#else
#include <sys/types.h>
#include <cstdint>
namespace timeskew::arch {
constexpr bool kSupported = false;
constexpr const char* kName = "unsupported";
inline bool readInstructionPointer(pid_t, uint64_t&) { return false; }
inline bool rewindInterruptedWait(pid_t, pid_t) { return false; }
}  // namespace timeskew::arch
#endif
