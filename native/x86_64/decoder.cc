#include "x86_64/decoder.h"

#include <cstring>

namespace timeskew::x86_64 {
namespace {

// How an opcode continues after its opcode byte(s).
enum Operand : uint8_t {
  kNone = 0,
  kModRM = 1,
  kImm8 = 2,
  kImm16 = 4,
  kImmZ = 8,       // 4 bytes, 2 with an operand-size prefix
  kImmV = 16,      // like Z, but 8 bytes with REX.W (mov r64, imm64)
  kMoffs = 32,     // 8-byte absolute address (4 with an address-size prefix)
  kInvalid = 64,
  kGroup3 = 128,   // F6/F7: the immediate exists only for /0 and /1 (test)
};

constexpr uint8_t M = kModRM;

uint8_t oneByteOperands(uint8_t op) {
  if (op < 0x40) {
    const uint8_t low = op & 7;
    if (op == 0x0f || op == 0x26 || op == 0x2e || op == 0x36 || op == 0x3e) return kInvalid;
    if (low <= 3) return M;
    if (low == 4) return kImm8;
    if (low == 5) return kImmZ;
    return kInvalid;  // push/pop segment, daa/das/aaa/aas: not in 64-bit mode
  }
  if (op < 0x50) return kInvalid;  // REX, handled by the caller
  if (op < 0x60) return kNone;     // push/pop reg
  switch (op) {
    case 0x63: return M;
    case 0x68: return kImmZ;
    case 0x69: return M | kImmZ;
    case 0x6a: return kImm8;
    case 0x6b: return M | kImm8;
    case 0x6c: case 0x6d: case 0x6e: case 0x6f: return kNone;
    default: break;
  }
  if (op < 0x70) return kInvalid;
  if (op < 0x80) return kImm8;  // jcc rel8
  switch (op) {
    case 0x80: case 0x83: return M | kImm8;
    case 0x81: return M | kImmZ;
    case 0x82: return kInvalid;
    default: break;
  }
  if (op < 0x90) return M;
  if (op < 0xa0) return op == 0x9a ? kInvalid : kNone;
  if (op < 0xa4) return kMoffs;
  if (op == 0xa8) return kImm8;
  if (op == 0xa9) return kImmZ;
  if (op < 0xb0) return kNone;
  if (op < 0xb8) return kImm8;
  if (op < 0xc0) return kImmV;
  switch (op) {
    case 0xc0: case 0xc1: case 0xc6: return M | kImm8;
    case 0xc7: return M | kImmZ;
    case 0xc2: case 0xca: return kImm16;
    case 0xc3: case 0xc9: case 0xcb: case 0xcc: case 0xcf: return kNone;
    case 0xc8: return kImm16 | kImm8;
    case 0xcd: return kImm8;
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: return M;
    case 0xd7: return kNone;
    case 0xe4: case 0xe5: case 0xe6: case 0xe7: return kImm8;
    case 0xe0: case 0xe1: case 0xe2: case 0xe3: case 0xeb: return kImm8;
    case 0xe8: case 0xe9: return kImmZ;
    case 0xec: case 0xed: case 0xee: case 0xef: return kNone;
    case 0xf1: case 0xf4: case 0xf5: return kNone;
    case 0xf6: case 0xf7: return M | kGroup3;
    case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd: return kNone;
    case 0xfe: case 0xff: return M;
    default: break;
  }
  if (op >= 0xd8 && op <= 0xdf) return M;  // x87
  return kInvalid;  // c4/c5 (VEX), d4-d6, ea, ce, ...
}

uint8_t twoByteOperands(uint8_t op) {
  switch (op) {
    case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0b: case 0x0e:
    case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x37:
    case 0x77: case 0xa0: case 0xa1: case 0xa2: case 0xa8: case 0xa9: case 0xaa:
      return kNone;
    case 0x70: case 0x71: case 0x72: case 0x73: case 0xa4: case 0xac: case 0xba:
    case 0xc2: case 0xc4: case 0xc5: case 0xc6:
      return M | kImm8;
    case 0x04: case 0x0a: case 0x0c: case 0x24: case 0x25: case 0x26: case 0x27:
    case 0x36: case 0x39: case 0x3b: case 0x3c: case 0x3d: case 0x3e: case 0x3f:
    case 0x7a: case 0x7b:
      return kInvalid;
    default: break;
  }
  if (op >= 0x80 && op <= 0x8f) return kImmZ;  // jcc rel32
  if (op >= 0xc8 && op <= 0xcf) return kNone;  // bswap
  return M;
}

bool isLegacyPrefix(uint8_t b) {
  switch (b) {
    case 0x66: case 0x67: case 0xf0: case 0xf2: case 0xf3:
    case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64: case 0x65:
      return true;
    default:
      return false;
  }
}

}  // namespace

bool decodeInstruction(const uint8_t* code, size_t available, Instruction& out) {
  out = Instruction{};
  const size_t limit = available < 15 ? available : 15;
  size_t at = 0;
  bool operandSize16 = false;
  bool addressSize32 = false;
  bool repPrefix = false;
  while (at < limit && isLegacyPrefix(code[at])) {
    if (code[at] == 0x66) operandSize16 = true;
    if (code[at] == 0x67) addressSize32 = true;
    if (code[at] == 0xf3) repPrefix = true;
    ++at;
  }
  bool rexW = false;
  if (at < limit && (code[at] & 0xf0) == 0x40) {
    rexW = (code[at] & 0x08) != 0;
    ++at;
  }
  if (at >= limit) return false;
  out.opcodeAt = static_cast<uint8_t>(at);
  const uint8_t op = code[at++];
  uint8_t operands;
  uint8_t op2 = 0;
  if (op == 0x0f) {
    if (at >= limit) return false;
    op2 = code[at++];
    if (op2 == 0x38 || op2 == 0x3a) {
      if (at >= limit) return false;
      ++at;  // third opcode byte
      operands = op2 == 0x3a ? (M | kImm8) : M;
    } else {
      operands = twoByteOperands(op2);
    }
  } else {
    operands = oneByteOperands(op);
  }
  if (operands & kInvalid) return false;

  if (operands & kModRM) {
    if (at >= limit) return false;
    const uint8_t modrm = code[at++];
    const uint8_t mod = modrm >> 6;
    const uint8_t reg = (modrm >> 3) & 7;
    const uint8_t rm = modrm & 7;
    if ((operands & kGroup3) && reg <= 1) operands |= (op == 0xf6 ? kImm8 : kImmZ);
    if (op == 0xff && (reg >= 2 && reg <= 5)) out.flow = Flow::kIndirect;
    if (mod != 3) {
      if (rm == 4) {
        if (at >= limit) return false;
        const uint8_t sib = code[at++];
        if ((sib & 7) == 5 && mod == 0) at += 4;
      } else if (rm == 5 && mod == 0) {
        out.ripDisplacementAt = static_cast<int8_t>(at);
        at += 4;
      }
      if (mod == 1) at += 1;
      if (mod == 2) at += 4;
    }
  }
  if (operands & kImm16) at += 2;
  if (operands & kImm8) at += 1;
  if (operands & kImmZ) at += operandSize16 ? 2 : 4;
  if (operands & kImmV) at += rexW ? 8 : (operandSize16 ? 2 : 4);
  if (operands & kMoffs) at += addressSize32 ? 4 : 8;
  if (at > limit) return false;
  out.length = static_cast<uint8_t>(at);

  // Relative branches: their immediate is the last thing in the instruction.
  if (op == 0x0f && op2 >= 0x80 && op2 <= 0x8f) {
    out.flow = Flow::kConditional;
    out.relativeSize = 4;
  } else if (op >= 0x70 && op <= 0x7f) {
    out.flow = Flow::kConditional;
    out.relativeSize = 1;
  } else if (op == 0xeb || op == 0xe9) {
    out.flow = Flow::kJump;
    out.relativeSize = op == 0xeb ? 1 : 4;
  } else if (op == 0xe8) {
    out.flow = Flow::kCall;
    out.relativeSize = 4;
  } else if (op >= 0xe0 && op <= 0xe3) {
    out.flow = Flow::kLoop;
    out.relativeSize = 1;
  } else if (op == 0xc3 || op == 0xc2) {
    out.flow = Flow::kReturn;
  } else if (op == 0xcc || op == 0xf4 || (op == 0x0f && (op2 == 0x0b || op2 == 0xff))) {
    out.flow = Flow::kStop;
  }
  if (out.relativeSize != 0) {
    // A 16-bit operand size would truncate RIP: never seen in the vDSO, so refuse it.
    if (operandSize16) return false;
    out.relativeAt = static_cast<int8_t>(out.length - out.relativeSize);
  }
  out.syscall = op == 0x0f && op2 == 0x05;
  out.endbr64 = repPrefix && op == 0x0f && op2 == 0x1e && out.length == 4 && code[at - 1] == 0xfa;
  return true;
}

uint64_t branchTarget(const uint8_t* code, const Instruction& insn, uint64_t address) {
  int64_t displacement;
  if (insn.relativeSize == 1) {
    displacement = static_cast<int8_t>(code[insn.relativeAt]);
  } else {
    int32_t value;
    std::memcpy(&value, code + insn.relativeAt, sizeof value);
    displacement = value;
  }
  return address + insn.length + static_cast<uint64_t>(displacement);
}

}  // namespace timeskew::x86_64
