#if defined(__x86_64__)
#include "x86_64/planner.h"

#include <sys/syscall.h>

#include <cstring>

#include "x86_64/decoder.h"
#include "x86_64/payload.h"

namespace timeskew::x86_64 {

namespace {

constexpr uint8_t kJumpLength = 5;  // jmp rel32

struct Candidate {
  HookedFunction which;
  const char* symbols[2];
  long syscallNumber;
};

constexpr Candidate kCandidates[kHookCount] = {
    {kClockGettime, {"__vdso_clock_gettime", "clock_gettime"}, SYS_clock_gettime},
    {kGettimeofday, {"__vdso_gettimeofday", "gettimeofday"}, SYS_gettimeofday},
    {kTime, {"__vdso_time", "time"}, SYS_time},
};

bool fitsInt32(int64_t value) { return value >= INT32_MIN && value <= INT32_MAX; }

void putInt32(uint8_t* at, int64_t value) {
  int32_t narrow = static_cast<int32_t>(value);
  std::memcpy(at, &narrow, sizeof narrow);
}

// Every relative branch in the function must land outside the bytes the jump overwrites (and
// outside anything before them, which would run into them); a loop back to the entry would
// re-enter the fake half-way.
bool branchesAvoidWindow(const VdsoImage& image, const FunctionPlan& plan, std::string& reason) {
  const uint8_t* bytes = image.bytes();
  const uint64_t end = plan.functionOffset + plan.functionSize;
  const uint64_t windowEnd = plan.patchOffset() + kJumpLength;
  for (uint64_t at = plan.functionOffset; at < end;) {
    Instruction insn;
    if (!decodeInstruction(bytes + at, end - at, insn)) {
      reason = "cannot decode the function at +" + std::to_string(at - plan.functionOffset);
      return false;
    }
    if (insn.relativeSize != 0) {
      const uint64_t target = branchTarget(bytes + at, insn, at);
      if (target >= plan.functionOffset && target < windowEnd) {
        reason = "a branch at +" + std::to_string(at - plan.functionOffset) +
                 " lands inside the patched bytes";
        return false;
      }
    }
    at += insn.length;
  }
  return true;
}

// Copies the displaced instructions to the trampoline (at `trampolineAt` in the image's address
// space), re-targeting RIP-relative operands and relative branches, then jumps back.
bool relocate(const VdsoImage& image, FunctionPlan& plan, uint64_t trampolineAt,
              std::string& reason) {
  const uint8_t* bytes = image.bytes();
  const uint64_t start = plan.patchOffset();
  const uint64_t functionEnd = plan.functionOffset + plan.functionSize;
  uint64_t at = start;
  uint8_t out = 0;
  while (at < start + kJumpLength) {
    Instruction insn;
    if (!decodeInstruction(bytes + at, functionEnd - at, insn)) {
      reason = "cannot decode the first instructions";
      return false;
    }
    const bool last = at + insn.length >= start + kJumpLength;
    if (!last && (insn.flow == Flow::kJump || insn.flow == Flow::kReturn ||
                  insn.flow == Flow::kStop || insn.flow == Flow::kIndirect)) {
      reason = "the function leaves before 5 bytes";
      return false;
    }
    if (insn.flow == Flow::kLoop) {
      reason = "a loop/jrcxz instruction cannot be relocated";
      return false;
    }
    if (plan.boundaryCount >= sizeof plan.originalBoundary) {
      reason = "too many displaced instructions";
      return false;
    }
    plan.originalBoundary[plan.boundaryCount] = static_cast<uint8_t>(at - start);
    plan.trampolineBoundary[plan.boundaryCount] = out;
    ++plan.boundaryCount;

    uint8_t copy[24];
    uint8_t length = insn.length;
    std::memcpy(copy, bytes + at, insn.length);
    if (insn.relativeSize != 0) {
      const uint64_t target = branchTarget(bytes + at, insn, at);
      if (target >= start && target < start + kJumpLength) {
        reason = "a displaced branch targets the displaced bytes";
        return false;
      }
      if (insn.relativeSize == 1) {
        // Widen rel8 to rel32: jcc 7x -> 0f 8x, jmp eb -> e9. Prefixes are not expected here.
        const uint8_t opcode = bytes[at + insn.opcodeAt];
        if (insn.opcodeAt != 0) {
          reason = "a prefixed short branch cannot be widened";
          return false;
        }
        if (opcode == 0xeb) {
          copy[0] = 0xe9;
          length = 5;
        } else {
          copy[0] = 0x0f;
          copy[1] = static_cast<uint8_t>(0x80 | (opcode & 0x0f));
          length = 6;
        }
      }
      const int64_t displacement =
          static_cast<int64_t>(target) - static_cast<int64_t>(trampolineAt + out + length);
      if (!fitsInt32(displacement)) {
        reason = "branch out of rel32 range";
        return false;
      }
      putInt32(copy + length - 4, displacement);
      ++plan.relocations;
    } else if (insn.ripDisplacementAt >= 0) {
      int32_t old;
      std::memcpy(&old, bytes + at + insn.ripDisplacementAt, sizeof old);
      const int64_t target = static_cast<int64_t>(at + insn.length) + old;
      const int64_t displacement = target - static_cast<int64_t>(trampolineAt + out + insn.length);
      if (!fitsInt32(displacement)) {
        reason = "RIP-relative operand out of range";
        return false;
      }
      putInt32(copy + insn.ripDisplacementAt, displacement);
      ++plan.relocations;
    }
    if (out + length + kJumpLength > TS_TRAMPOLINE_SIZE) {
      reason = "displaced instructions do not fit the trampoline";
      return false;
    }
    std::memcpy(plan.trampoline + out, copy, length);
    out = static_cast<uint8_t>(out + length);
    at += insn.length;
  }
  if (at > functionEnd) {
    reason = "the function is shorter than the jump";
    return false;
  }
  plan.displacedLength = static_cast<uint8_t>(at - start);
  plan.trampoline[out] = 0xe9;
  putInt32(plan.trampoline + out + 1, static_cast<int64_t>(at) -
                                          static_cast<int64_t>(trampolineAt + out + kJumpLength));
  plan.trampolineLength = static_cast<uint8_t>(out + kJumpLength);
  return true;
}

void buildSyscallTrampoline(FunctionPlan& plan, long number) {
  // mov $number, %eax; syscall; ret — the arguments are already where the kernel wants them.
  const uint8_t stub[] = {0xb8, static_cast<uint8_t>(number), static_cast<uint8_t>(number >> 8), 0,
                          0,    0x0f, 0x05, 0xc3};
  std::memset(plan.trampoline, 0, sizeof plan.trampoline);
  std::memcpy(plan.trampoline, stub, sizeof stub);
  plan.trampolineLength = sizeof stub;
  plan.boundaryCount = 0;
  plan.relocations = 0;
}

}  // namespace

HookPlan planHooks(const VdsoImage& image, bool forceSyscall) {
  HookPlan plan;
  const PayloadLayout& payload = payloadLayout();
  if (image.machine() != ElfMachine::kX86_64) {
    plan.error = "not an x86_64 vDSO";
    return plan;
  }
  plan.blobOffset = (image.elfEnd() + 15) & ~size_t{15};
  plan.freeBytes = image.size() - image.elfEnd();
  plan.neededBytes = payload.size;
  if (plan.blobOffset + payload.size > image.size()) {
    plan.error = "the vDSO has " + std::to_string(plan.freeBytes) + " free bytes, timeskew needs " +
                 std::to_string(payload.size + (plan.blobOffset - image.elfEnd()));
    return plan;
  }
  for (size_t at = image.elfEnd(); at < image.size(); ++at) {
    if (image.bytes()[at] != 0) {
      plan.error = "the padding after the vDSO is not empty (another tool's code?)";
      return plan;
    }
  }
  for (const Candidate& candidate : kCandidates) {
    FunctionPlan& function = plan.functions[candidate.which];
    ElfSymbol symbol;
    const char* found = nullptr;
    for (const char* name : candidate.symbols) {
      if (image.findSymbol(name, symbol)) {
        found = name;
        break;
      }
    }
    if (found == nullptr) {
      plan.error = std::string("the vDSO does not export ") + candidate.symbols[0];
      return plan;
    }
    function.symbol = found;
    function.functionOffset = symbol.offset;
    function.functionSize = symbol.size ? symbol.size : image.size() - symbol.offset;
    Instruction first;
    if (decodeInstruction(image.bytes() + symbol.offset, function.functionSize, first) &&
        first.endbr64) {
      function.patchAt = first.length;  // keep the IBT landing pad in place
    }
    if (uint64_t{function.patchAt} + kJumpLength > function.functionSize) {
      plan.error = std::string(found) + " is too short to hook";
      return plan;
    }
    std::string reason;
    if (!branchesAvoidWindow(image, function, reason)) {
      plan.error = std::string(found) + ": " + reason;
      return plan;
    }
    const uint64_t trampolineAt = plan.blobOffset + payload.trampolineOffset[candidate.which];
    if (forceSyscall) {
      function.mode = kSyscall;
      function.reason = "syscall mode requested";
    } else if (!relocate(image, function, trampolineAt, reason)) {
      function.mode = kSyscall;
      function.reason = reason;
    }
    if (function.mode == kSyscall) buildSyscallTrampoline(function, candidate.syscallNumber);

    // The entry flip: one write of the aligned 8 (or, when the jump straddles a word, 16) bytes
    // around the jump, with every other byte unchanged.
    const uint64_t patchAt = function.patchOffset();
    function.regionOffset = patchAt & ~uint64_t{7};
    function.regionLength = (patchAt + kJumpLength <= function.regionOffset + 8) ? 8 : 16;
    std::memcpy(function.original, image.bytes() + function.regionOffset, function.regionLength);
    std::memcpy(function.patched, function.original, function.regionLength);
    uint8_t* jump = function.patched + (patchAt - function.regionOffset);
    jump[0] = 0xe9;
    putInt32(jump + 1, static_cast<int64_t>(plan.blobOffset + payload.fakeOffset[candidate.which]) -
                           static_cast<int64_t>(patchAt + kJumpLength));
    function.hooked = true;
  }
  plan.ok = true;
  return plan;
}

}  // namespace timeskew::x86_64
#endif
