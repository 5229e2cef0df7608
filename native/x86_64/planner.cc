#if defined(__x86_64__)
#include "x86_64/planner.h"

#include <sys/syscall.h>

#include <algorithm>
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

// Copies the whole function (from the patch point) into a region of `size` bytes at `regionAt`
// (the image's address space), right-aligned so that its final `ret` can simply be dropped: the
// code then falls through to whatever follows the region. Other `ret`s become jumps to the
// region's end. Only code that provably stays inside itself is copied: every reachable
// instruction decodes, every branch lands on an instruction of the function, and nothing calls,
// jumps indirectly, loops with rcx or makes a syscall. RIP-relative operands are re-targeted.
bool inlineFunction(const VdsoImage& image, FunctionPlan& plan, uint64_t regionAt, size_t size,
                    std::string& reason) {
  struct Insn {
    uint64_t at;
    Instruction decoded;
    bool reachable;
    uint64_t target;  // relative branches
    uint8_t length;   // emitted
    size_t offset;    // emitted, from the copy's start
  };
  constexpr size_t kMaxInstructions = 64;
  const uint8_t* bytes = image.bytes();
  const uint64_t start = plan.patchOffset();
  const uint64_t end = plan.functionOffset + plan.functionSize;
  if (size > sizeof plan.inlineCode) {
    reason = "inline region too large";
    return false;
  }
  Insn insns[kMaxInstructions];
  size_t count = 0;
  for (uint64_t at = start; at < end;) {
    if (count == kMaxInstructions) {
      reason = "the function is too long to copy";
      return false;
    }
    Insn& insn = insns[count++];
    insn = Insn{};
    insn.at = at;
    if (!decodeInstruction(bytes + at, end - at, insn.decoded)) {
      // Undecodable bytes may only follow the code (padding): checked below, once reachability
      // is known.
      --count;
      break;
    }
    at += insn.decoded.length;
  }
  auto indexOf = [&](uint64_t address) -> int {
    for (size_t i = 0; i < count; ++i) {
      if (insns[i].at == address) return static_cast<int>(i);
    }
    return -1;
  };
  // Reachability from the patch point.
  size_t work[kMaxInstructions];
  size_t pending = 0;
  if (count == 0) {
    reason = "cannot decode the function";
    return false;
  }
  insns[0].reachable = true;
  work[pending++] = 0;
  while (pending > 0) {
    const size_t i = work[--pending];
    Insn& insn = insns[i];
    const Instruction& d = insn.decoded;
    if (d.syscall || d.flow == Flow::kCall || d.flow == Flow::kIndirect || d.flow == Flow::kLoop ||
        d.flow == Flow::kStop) {
      reason = "the function calls, jumps indirectly, loops or stops";
      return false;
    }
    if (d.flow == Flow::kReturn && bytes[insn.at + d.opcodeAt] != 0xc3) {
      reason = "ret imm16";
      return false;
    }
    auto mark = [&](uint64_t address) -> bool {
      const int j = indexOf(address);
      if (j < 0) return false;
      if (!insns[j].reachable) {
        insns[j].reachable = true;
        work[pending++] = static_cast<size_t>(j);
      }
      return true;
    };
    if (d.relativeSize != 0) {
      insn.target = branchTarget(bytes + insn.at, d, insn.at);
      if (!mark(insn.target)) {
        reason = "a branch leaves the copied code";
        return false;
      }
    }
    if (d.flow == Flow::kSequential || d.flow == Flow::kConditional) {
      if (!mark(insn.at + d.length)) {
        reason = "the function runs past its end";
        return false;
      }
    }
  }
  // The last reachable instruction, in address order: its `ret` (if it is one) is dropped.
  int last = -1;
  for (size_t i = 0; i < count; ++i) {
    if (insns[i].reachable) last = static_cast<int>(i);
  }
  // Layout: branches keep their size unless their target moved out of reach; iterate until
  // nothing grows (sizes only grow, so this ends).
  for (size_t i = 0; i < count; ++i) {
    const Instruction& d = insns[i].decoded;
    if (!insns[i].reachable) continue;
    if (d.flow == Flow::kReturn) {
      insns[i].length = static_cast<int>(i) == last ? 0 : 2;
    } else if (d.relativeSize != 0 && d.opcodeAt != 0) {
      reason = "a prefixed branch";
      return false;
    } else {
      insns[i].length = d.length;
    }
  }
  size_t total = 0;
  for (int round = 0;; ++round) {
    total = 0;
    for (size_t i = 0; i < count; ++i) {
      if (!insns[i].reachable) continue;
      insns[i].offset = total;
      total += insns[i].length;
    }
    if (total > size) {
      reason = "the function does not fit the inline region (" + std::to_string(total) + " > " +
               std::to_string(size) + " bytes)";
      return false;
    }
    const size_t pad = size - total;
    bool grew = false;
    for (size_t i = 0; i < count; ++i) {
      Insn& insn = insns[i];
      if (!insn.reachable || insn.length == 0) continue;
      const bool isReturn = insn.decoded.flow == Flow::kReturn;
      if (!isReturn && insn.decoded.relativeSize == 0) continue;
      if (insn.length >= 5) continue;  // already rel32
      const int64_t from = static_cast<int64_t>(pad + insn.offset + insn.length);
      const int64_t to = isReturn ? static_cast<int64_t>(size)
                                  : static_cast<int64_t>(pad + insns[indexOf(insn.target)].offset);
      if (to - from < -128 || to - from > 127) {
        const bool jump = isReturn || insn.decoded.flow == Flow::kJump;
        insn.length = jump ? 5 : 6;
        grew = true;
      }
    }
    if (!grew) break;
    if (round > 8) {
      reason = "branch layout does not settle";
      return false;
    }
  }
  const size_t pad = size - total;
  uint8_t* out = plan.inlineCode;
  // Padding in front: long NOPs, or a short jump over it.
  static const uint8_t kNops[9][9] = {
      {0x90},
      {0x66, 0x90},
      {0x0f, 0x1f, 0x00},
      {0x0f, 0x1f, 0x40, 0x00},
      {0x0f, 0x1f, 0x44, 0x00, 0x00},
      {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
      {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
      {0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
      {0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
  };
  if (pad > 18) {
    out[0] = 0xeb;
    out[1] = static_cast<uint8_t>(pad - 2);
    std::memset(out + 2, 0xcc, pad - 2);
  } else {
    for (size_t done = 0; done < pad;) {
      const size_t n = std::min<size_t>(9, pad - done);
      std::memcpy(out + done, kNops[n - 1], n);
      done += n;
    }
  }
  for (size_t i = 0; i < count; ++i) {
    const Insn& insn = insns[i];
    if (!insn.reachable || insn.length == 0) continue;
    uint8_t* code = out + pad + insn.offset;
    const Instruction& d = insn.decoded;
    const int64_t next = static_cast<int64_t>(pad + insn.offset + insn.length);
    if (d.flow == Flow::kReturn) {
      const int64_t displacement = static_cast<int64_t>(size) - next;
      if (insn.length == 2) {
        code[0] = 0xeb;
        code[1] = static_cast<uint8_t>(static_cast<int8_t>(displacement));
      } else {
        code[0] = 0xe9;
        putInt32(code + 1, displacement);
      }
      continue;
    }
    std::memcpy(code, bytes + insn.at, d.length);
    if (d.relativeSize != 0) {
      const int64_t displacement =
          static_cast<int64_t>(pad + insns[indexOf(insn.target)].offset) - next;
      const uint8_t opcode = bytes[insn.at];
      if (insn.length == d.length && d.relativeSize == 1) {
        code[d.relativeAt] = static_cast<uint8_t>(static_cast<int8_t>(displacement));
      } else if (insn.length == d.length) {
        putInt32(code + d.relativeAt, displacement);
      } else if (d.flow == Flow::kJump) {  // eb -> e9
        code[0] = 0xe9;
        putInt32(code + 1, displacement);
      } else {  // 7x -> 0f 8x
        code[0] = 0x0f;
        code[1] = static_cast<uint8_t>(0x80 | (opcode & 0x0f));
        putInt32(code + 2, displacement);
      }
    } else if (d.ripDisplacementAt >= 0) {
      int32_t old;
      std::memcpy(&old, bytes + insn.at + d.ripDisplacementAt, sizeof old);
      const int64_t target = static_cast<int64_t>(insn.at + d.length) + old;
      const int64_t displacement = target - static_cast<int64_t>(regionAt + next);
      if (!fitsInt32(displacement)) {
        reason = "RIP-relative operand out of range";
        return false;
      }
      putInt32(code + d.ripDisplacementAt, displacement);
    }
  }
  plan.inlineLength = static_cast<uint8_t>(size);
  plan.inlined = true;
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
    if (payload.inlineSize[candidate.which] != 0) {
      if (function.mode == kSyscall) {
        function.inlineReason = "syscall mode";
      } else if (std::string why; !inlineFunction(
                     image, function, plan.blobOffset + payload.inlineOffset[candidate.which],
                     payload.inlineSize[candidate.which], why)) {
        function.inlineReason = why;
      }
    }

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
