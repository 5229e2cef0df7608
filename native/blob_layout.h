// The state timeskew leaves inside the target: a header, the clock offsets, and (after them) the
// architecture's trampolines and fake functions. It lives in the zero padding at the end of the
// target's own [vdso] mapping, so any process can find, inspect and remove it, even when the
// process that installed it is gone, and nothing is allocated in the target.
#pragma once

#include <cstdint>

// Numbers the payload assembly needs too (as text): keep them plain macros.
#define TS_CLOCK_COUNT 12
#define TS_HEADER_SIZE 72
#define TS_QUICK_MASK_OFFSET 68
#define TS_CONTROL_OFFSET 72
#define TS_SLOTS_OFFSET 80
#define TS_SLOT_SIZE 160
#define TS_SLOT_MASK 0
#define TS_SLOT_USEC 4
#define TS_SLOT_RATE 8
#define TS_SLOT_SEC 16
#define TS_SLOT_NSEC 112
// The code shared by every install starts here (it is what blobCodeIsOurs compares, trampolines
// masked). Between the slots and it: time()'s fake entry and its inline region, which holds a
// per-kernel copy of the original time() (see x86_64/payload.h, PayloadLayout::inlineOffset).
#define TS_CODE_OFFSET 449
#define TS_TRAMPOLINE_SIZE 20

namespace timeskew {

constexpr char kBlobMagic[8] = {'T', 'I', 'M', 'E', 'S', 'K', 'E', 'W'};
constexpr uint32_t kLayoutVersion = 4;  // 4: time() inlined, code from TS_CODE_OFFSET 452
constexpr int kClockCount = TS_CLOCK_COUNT;

enum HookedFunction : uint8_t { kClockGettime = 0, kGettimeofday = 1, kTime = 2, kHookCount = 3 };
enum HookMode : uint8_t { kTrampoline = 0, kSyscall = 1 };

constexpr const char* kHookNames[kHookCount] = {"clock_gettime", "gettimeofday", "time"};

// Header flags.
constexpr uint32_t kFlagCodeRetained = 1;  // restored, but a thread was still in the hook code

// Sizes are tight on purpose: the smallest padding in the corpus (Linux 6.12) is 992 bytes.
struct PatchedEntry {
  uint16_t patchOffset;  // where the 5-byte jump sits, from the vDSO base; 0 when not hooked
  uint8_t mode;          // HookMode
  uint8_t reserved;
  uint8_t original[8];   // the 5 bytes the jump replaced (and 3 that follow, unchanged)
};
static_assert(sizeof(PatchedEntry) == 12, "PatchedEntry is part of the in-target layout");

// The aligned window around a jump that one write rewrites: 8 bytes, or 16 when the jump
// straddles an 8-byte boundary.
inline uint64_t patchRegionStart(uint64_t patchOffset) { return patchOffset & ~uint64_t{7}; }
inline uint8_t patchRegionLength(uint64_t patchOffset) {
  return patchOffset + 5 <= patchRegionStart(patchOffset) + 8 ? 8 : 16;
}

struct BlobHeader {
  char magic[8];
  uint32_t layout;
  uint32_t blobSize;
  char version[8];  // timeskew version that installed it, NUL-padded
  int32_t installerPid;
  uint32_t flags;
  PatchedEntry entries[kHookCount];
  uint32_t quickMask;  // read by the fakes, see below
};
static_assert(sizeof(BlobHeader) == TS_HEADER_SIZE, "header size is part of the layout");

// Read by the fakes under the control word: `mask` bit i skews clock id i; bit 0 also skews
// gettimeofday and time. A selected clock reads
//     fake(t) = t + floor(t * rate / 2^32) + base[i]
// with t the real reading. rate == 0 is a plain offset (the fast path: no multiply), -2^32 a
// frozen clock, 2^32 * (r - 1) a clock running r times as fast. base is kept split into whole
// seconds (floor) and nanoseconds in [0, 1e9) so that adding it never divides and tv_nsec stays
// normalised. The same formula in microseconds (gettimeofday) or seconds (time) gives the same
// clock, because the rate term does not depend on the unit.
struct ClockSlot {
  uint32_t mask;
  uint32_t realtimeUsec;  // nsec[0] / 1000 for gettimeofday
  int64_t rate;           // Q32 fixed point, see above
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

// What the caller asks for. Each selected clock reads real + offset at the moment the table is
// published, and from then on runs at `rate` (Q32 as in ClockSlot; 0 = real speed):
//   - keepMask: for these clocks, ignore offsetNs and keep the skew they have now (so that a
//     rate change does not make the clock jump);
//   - absoluteMask: for these clocks offsetNs is the absolute value the clock reads now.
struct ClockTable {
  uint32_t mask = 0;
  uint32_t keepMask = 0;
  uint32_t absoluteMask = 0;
  int64_t rate = 0;
  int64_t offsetNs[kClockCount] = {};
};

// Rates outside [0, 4] (rate fields outside [-2^32, 3 * 2^32]) could overflow the fake's 64-bit
// arithmetic on a realtime clock near 2^61 ns; callers are refused before this point.
constexpr int64_t kMinRate = -(int64_t{1} << 32);
constexpr int64_t kMaxRate = int64_t{3} << 32;

// The skew each clock shows at its real reading `nowNs[i]` under `slot` (fake - real).
int64_t skewAt(const ClockSlot& slot, int clock, int64_t nowNs);

// Builds the slot to publish. `current` (may be null) is the slot in force, for keepMask.
ClockSlot toSlot(const ClockTable& table, const ClockSlot* current);

// What the slot means now, as offsets (fake - real) per clock, for inspect().
ClockTable describeSlot(const ClockSlot& slot);

}  // namespace timeskew
