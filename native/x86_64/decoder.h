// Length decoder for the x86-64 general-purpose instruction set: enough to walk the vDSO's time
// functions, find every operand that depends on where the instruction sits (RIP-relative memory,
// relative branches) and refuse anything it does not understand, so the planner never guesses.
#pragma once

#include <cstddef>
#include <cstdint>

namespace timeskew::x86_64 {

enum class Flow : uint8_t {
  kSequential,     // falls through to the next instruction
  kJump,           // jmp rel8/rel32: never falls through
  kConditional,    // jcc rel8/rel32
  kCall,           // call rel32
  kReturn,         // ret, ret imm16
  kLoop,           // loop/loope/loopne/jrcxz: rel8 only, cannot be widened
  kIndirect,       // jmp/call through a register or memory
  kStop,           // int3, hlt, ud2, ...: execution does not continue normally
};

struct Instruction {
  uint8_t length = 0;
  // Offset of the 32-bit displacement inside the instruction when the memory operand is
  // RIP-relative, else -1. The displacement is relative to the END of the instruction, which
  // includes any immediate that follows it.
  int8_t ripDisplacementAt = -1;
  // Offset and size (1 or 4) of a relative branch target, else -1 / 0.
  int8_t relativeAt = -1;
  uint8_t relativeSize = 0;
  Flow flow = Flow::kSequential;
  uint8_t opcodeAt = 0;  // offset of the first opcode byte, after prefixes and REX
  bool endbr64 = false;
  bool syscall = false;
};

// Decodes one instruction from at most `available` bytes. Returns false for anything outside the
// supported set (VEX/EVEX, invalid or truncated encodings).
bool decodeInstruction(const uint8_t* code, size_t available, Instruction& out);

// Absolute target of a relative branch decoded at `address`.
uint64_t branchTarget(const uint8_t* code, const Instruction& insn, uint64_t address);

}  // namespace timeskew::x86_64
