// The state timeskew leaves inside the target: a header, the clock offsets, and (after them) the
// architecture's trampolines and fake functions. It lives in the zero padding at the end of the
// target's own [vdso] mapping, so any process can find, inspect and remove it, even when the
// process that installed it is gone, and nothing is allocated in the target.
#pragma once

#include <cstdint>

// Numbers the payload assembly needs too (as text): keep them plain macros.
#define TS_CLOCK_COUNT 12
#define TS_HEADER_SIZE 128
#define TS_CONTROL_OFFSET 128
#define TS_QUICK_MASK_OFFSET 136
#define TS_SLOTS_OFFSET 144
#define TS_SLOT_SIZE 152
#define TS_SLOT_MASK 0
#define TS_SLOT_USEC 4
#define TS_SLOT_SEC 8
#define TS_SLOT_NSEC 104
#define TS_TRAMPOLINES_OFFSET 448
#define TS_TRAMPOLINE_SIZE 32

namespace timeskew {

constexpr char kBlobMagic[8] = {'T', 'I', 'M', 'E', 'S', 'K', 'E', 'W'};
constexpr uint32_t kLayoutVersion = 1;
constexpr int kClockCount = TS_CLOCK_COUNT;

enum HookedFunction : uint8_t { kClockGettime = 0, kGettimeofday = 1, kTime = 2, kHookCount = 3 };
enum HookMode : uint8_t { kTrampoline = 0, kSyscall = 1 };

constexpr const char* kHookNames[kHookCount] = {"clock_gettime", "gettimeofday", "time"};

// Header flags.
constexpr uint32_t kFlagCodeRetained = 1;  // restored, but a thread was still in the hook code

// Sizes are tight on purpose: the smallest padding in the corpus (Linux 6.12) is 992 bytes.
struct PatchedEntry {
  uint32_t functionOffset;    // from the vDSO base
  uint32_t regionOffset;      // 8-aligned start of the rewritten window, from the vDSO base
  uint16_t trampolineOffset;  // from the blob start
  uint8_t regionLength;       // 8 or 16; 0 when the function is not hooked
  uint8_t mode;               // HookMode
  uint8_t patchAt;            // jump offset from the function start (after endbr64)
  uint8_t displacedLength;    // original bytes moved into the trampoline
  uint8_t reserved[2];
  uint8_t original[16];       // the window before patching
};
static_assert(sizeof(PatchedEntry) == 32, "PatchedEntry is part of the in-target layout");

struct BlobHeader {
  char magic[8];
  uint32_t layout;
  uint32_t blobSize;
  char version[8];  // timeskew version that installed it, NUL-padded
  int32_t installerPid;
  uint32_t flags;
  PatchedEntry entries[kHookCount];
};
static_assert(sizeof(BlobHeader) == TS_HEADER_SIZE, "header size is part of the layout");

// Read by the fakes under the control word: `mask` bit i skews clock id i; bit 0 also skews
// gettimeofday and time. Offsets are split into whole seconds (floor) and nanoseconds in
// [0, 1e9) so that the fake adds without dividing and tv_nsec stays normalised.
struct ClockSlot {
  uint32_t mask;
  uint32_t realtimeUsec;  // nsec[0] / 1000 for gettimeofday
  int64_t sec[kClockCount];
  uint32_t nsec[kClockCount];
};
static_assert(sizeof(ClockSlot) == TS_SLOT_SIZE, "slot size is part of the layout");

// The control word (at TS_CONTROL_OFFSET) is generation << 1 | active slot. A writer fills the
// inactive slot, then publishes it with one aligned 8-byte write; a reader retries when the word
// changed under it. Unlike a seqlock, a writer killed half-way never leaves readers spinning.
// The quick mask (at TS_QUICK_MASK_OFFSET) lets a fake hand an unselected clock straight to the
// original code with one test; during an update it holds the union of the old and new masks, so
// at worst a call takes the slow path and finds its clock unselected in the slot.

// What the caller asks for, before it is split for the fakes.
struct ClockTable {
  uint32_t mask = 0;
  int64_t offsetNs[kClockCount] = {};
};

ClockSlot toSlot(const ClockTable& table);
ClockTable fromSlot(const ClockSlot& slot);

}  // namespace timeskew
