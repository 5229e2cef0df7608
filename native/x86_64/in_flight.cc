#if defined(__x86_64__)
#include "x86_64/in_flight.h"

#include <cstring>

#include "target_memory.h"
#include "x86_64/registers.h"

namespace timeskew::x86_64 {

namespace {

// How far above the stack pointer signal frames are looked for: a handler's own frames plus the
// frame the kernel built (its FPU state sits above the saved registers, so it does not count).
constexpr size_t kSignalScanBytes = 8192;
// struct rt_sigframe: pretcode (8), ucontext { uc_flags, uc_link, uc_stack (24), sigcontext }.
// Inside sigcontext the general registers come in the order r8..r15, rdi, rsi, rbp, rbx, rdx,
// rax, rcx, rsp, rip, eflags, then cs/gs/fs/ss as 16-bit fields.
constexpr size_t kSavedRbpFromRip = 6 * 8;
constexpr size_t kSavedRspFromRip = 1 * 8;
constexpr size_t kSavedEflagsFromRip = 8;
constexpr size_t kSavedCsFromRip = 16;
constexpr uint16_t kUserCodeSegment = 0x33;

bool looksLikeSavedContext(const uint64_t* words, size_t count, size_t ripIndex) {
  if (ripIndex < 6 || ripIndex + 2 >= count) return false;
  const uint64_t eflags = words[ripIndex + kSavedEflagsFromRip / 8];
  const uint16_t cs = static_cast<uint16_t>(words[ripIndex + kSavedCsFromRip / 8]);
  // Bit 1 is always set, interrupts are always enabled in user mode, and nothing above the ID
  // flag (bit 21) exists.
  return (eflags & 0x202) == 0x202 && eflags < (1u << 22) && cs == kUserCodeSegment;
}

// Unwinds original vDSO code to its caller. True when the outermost vDSO frame returns into our
// blob (a fake's call), or when it cannot be told.
bool vdsoFrameReturnsToUs(const FlightView& view, CodePosition at) {
  if (view.frames == nullptr) return true;
  for (int depth = 0; depth < 16; ++depth) {
    // Above the innermost frame the ip is a return address: look up the call instruction.
    const uint64_t lookupAt = at.ip - view.vdso.start - (depth > 0 ? 1 : 0);
    const FrameRule rule = view.frames->lookup(lookupAt);
    if (!rule.known || !rule.returnSaved) return true;
    uint64_t base = 0;
    if (rule.cfaRegister == kDwarfStackPointer) {
      base = at.sp;
    } else if (rule.cfaRegister == kDwarfFramePointer) {
      base = at.fp;
    } else {
      return true;
    }
    const uint64_t cfa = base + static_cast<uint64_t>(rule.cfaOffset);
    uint64_t returnAddress = 0;
    if (!readTargetMemory(view.memoryPid, cfa + static_cast<uint64_t>(rule.returnOffset),
                          &returnAddress, sizeof returnAddress)) {
      return true;
    }
    if (rule.framePointerSaved &&
        !readTargetMemory(view.memoryPid, cfa + static_cast<uint64_t>(rule.framePointerOffset),
                          &at.fp, sizeof at.fp)) {
      return true;
    }
    at.sp = cfa;
    at.ip = returnAddress;
    if (view.blob.contains(returnAddress)) return true;
    if (!view.vdso.contains(returnAddress)) return false;
  }
  return true;
}

}  // namespace

bool collectPositions(pid_t memoryPid, pid_t tid, std::vector<CodePosition>& positions) {
  positions.clear();
  CodePosition own;
  if (!readFrameRegisters(tid, own.ip, own.sp, own.fp)) return false;
  positions.push_back(own);
  static thread_local uint64_t words[kSignalScanBytes / 8];
  const size_t got = readTargetMemoryPrefix(memoryPid, own.sp, words, sizeof words) / 8;
  for (size_t i = 0; i < got; ++i) {
    if (!looksLikeSavedContext(words, got, i)) continue;
    CodePosition saved;
    saved.ip = words[i];
    saved.sp = words[i - kSavedRspFromRip / 8];
    saved.fp = words[i - kSavedRbpFromRip / 8];
    saved.fromSignalFrame = true;
    saved.savedAt = own.sp + i * 8;
    positions.push_back(saved);
  }
  return true;
}

bool isInFlight(const FlightView& view, const std::vector<CodePosition>& positions) {
  for (const CodePosition& at : positions) {
    if (view.blob.contains(at.ip)) return true;
    if (view.vdso.contains(at.ip) && vdsoFrameReturnsToUs(view, at)) return true;
  }
  return false;
}

}  // namespace timeskew::x86_64
#endif
