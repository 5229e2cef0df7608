#include "frame_table.h"

#include <algorithm>
#include <climits>
#include <cstdio>

namespace timeskew {

namespace {

// Pointer encodings (DW_EH_PE_*) of .eh_frame and .eh_frame_hdr, from the Linux Standard Base.
constexpr uint8_t kPeOmit = 0xff;
constexpr uint8_t kPeAbsptr = 0x00, kPeUleb128 = 0x01, kPeUdata2 = 0x02, kPeUdata4 = 0x03,
                  kPeUdata8 = 0x04, kPeSleb128 = 0x09, kPeSdata2 = 0x0a, kPeSdata4 = 0x0b,
                  kPeSdata8 = 0x0c;
constexpr uint8_t kPeApplicationMask = 0x70, kPeAbsolute = 0x00, kPePcrel = 0x10,
                  kPeDatarel = 0x30, kPeIndirect = 0x80;

// Deep enough for any compiler's nesting; a limit keeps a hostile image from growing it unbounded.
constexpr size_t kMaxRememberedStates = 64;
constexpr uint64_t kNoRegister = ~0ull;

// Reads little-endian DWARF data from [pos, end) of the image. Failure is sticky, so a parser can
// read a whole record and check once; nothing is ever read outside the bounds.
class Cursor {
 public:
  Cursor() = default;
  Cursor(const uint8_t* bytes, uint64_t pos, uint64_t end) : bytes_(bytes), pos_(pos), end_(end) {}

  bool ok() const { return ok_; }
  bool atEnd() const { return pos_ >= end_; }
  uint64_t pos() const { return pos_; }

  uint64_t fixed(unsigned width) {
    if (!ok_ || end_ - pos_ < width) return fail();
    uint64_t value = 0;
    for (unsigned i = 0; i < width; ++i) value |= uint64_t(bytes_[pos_ + i]) << (8 * i);
    pos_ += width;
    return value;
  }

  // Bits past the 64th are dropped: such values are nonsense that later bound checks reject.
  uint64_t uleb() {
    uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
      const uint64_t byte = fixed(1);
      if (!ok_) return 0;
      if (shift < 64) value |= (byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return value;
    }
  }

  int64_t sleb() {
    uint64_t value = 0;
    unsigned shift = 0;
    uint64_t byte = 0;
    do {
      byte = fixed(1);
      if (!ok_) return 0;
      if (shift < 64) value |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    if (shift < 64 && (byte & 0x40)) value |= ~0ull << shift;
    return static_cast<int64_t>(value);
  }

  void skip(uint64_t length) { sub(length); }

  // The next `length` bytes as their own cursor; this one moves past them.
  Cursor sub(uint64_t length) {
    if (!ok_ || end_ - pos_ < length) {
      fail();
      return Cursor(bytes_, pos_, pos_);
    }
    Cursor inner(bytes_, pos_, pos_ + length);
    pos_ += length;
    return inner;
  }

 private:
  uint64_t fail() {
    ok_ = false;
    pos_ = end_;
    return 0;
  }

  const uint8_t* bytes_ = nullptr;
  uint64_t pos_ = 0, end_ = 0;
  bool ok_ = true;
};

bool readValue(Cursor& cursor, uint8_t encoding, uint64_t& value) {
  switch (encoding & 0x0f) {
    case kPeAbsptr:  // 64-bit images only (VdsoImage refuses the others)
    case kPeUdata8:
    case kPeSdata8: value = cursor.fixed(8); break;
    case kPeUleb128: value = cursor.uleb(); break;
    case kPeUdata2: value = cursor.fixed(2); break;
    case kPeUdata4: value = cursor.fixed(4); break;
    case kPeSleb128: value = static_cast<uint64_t>(cursor.sleb()); break;
    case kPeSdata2: value = static_cast<uint64_t>(int64_t(int16_t(cursor.fixed(2)))); break;
    case kPeSdata4: value = static_cast<uint64_t>(int64_t(int32_t(cursor.fixed(4)))); break;
    default: return false;
  }
  return cursor.ok();
}

// What relative pointers are relative to. Offsets and addresses differ by a constant within the
// vDSO's single load segment, so pc-relative pointers are resolved in offsets directly.
struct PointerBase {
  const VdsoImage* image = nullptr;
  bool hasData = false;  // only .eh_frame_hdr defines a data base (itself); .eh_frame has none
  uint64_t data = 0;
};

// An encoded pointer, as an image offset (not yet bound-checked). An indirect pointer would need a
// read at a run-time address, which an image alone cannot answer.
bool readPointer(Cursor& cursor, uint8_t encoding, const PointerBase& base, uint64_t& offset) {
  if (encoding == kPeOmit || (encoding & kPeIndirect)) return false;
  const uint64_t field = cursor.pos();
  uint64_t value = 0;
  if (!readValue(cursor, encoding, value)) return false;
  switch (encoding & kPeApplicationMask) {
    case kPeAbsolute: offset = base.image->offsetOfVaddr(value); return true;
    case kPePcrel: offset = field + value; return true;
    case kPeDatarel:
      if (!base.hasData) return false;
      offset = base.data + value;
      return true;
    default: return false;
  }
}

// One CIE or FDE: `body` starts after the CIE id / CIE pointer and ends with the record.
struct Record {
  bool terminator = false;
  bool isCie = false;
  uint64_t ciePosition = 0;
  Cursor body;
};

bool readRecord(Cursor& section, Record& record) {
  uint64_t length = section.fixed(4);
  unsigned idWidth = 4;
  if (length == 0xffffffff) {  // 64-bit DWARF format
    length = section.fixed(8);
    idWidth = 8;
  }
  if (!section.ok()) return false;
  record.terminator = length == 0;
  if (record.terminator) return true;
  Cursor entry = section.sub(length);
  const uint64_t idPosition = entry.pos();
  const uint64_t id = entry.fixed(idWidth);
  record.isCie = id == 0;
  // An FDE names its CIE by distance back from the id field.
  record.ciePosition = idPosition - id;
  record.body = entry;
  return section.ok() && entry.ok() && (record.isCie || id <= idPosition);
}

struct Cie {
  uint64_t codeAlignment = 1;
  int64_t dataAlignment = 1;
  uint8_t fdeEncoding = kPeAbsptr;
  bool hasAugmentationData = false;
  Cursor instructions;
};

bool parseCie(Cursor body, Cie& cie, std::string& why) {
  const uint64_t version = body.fixed(1);
  if (version != 1 && version != 3 && version != 4) {
    why = "unsupported CIE version";
    return false;
  }
  std::string augmentation;
  for (uint64_t c = body.fixed(1); body.ok() && c != 0; c = body.fixed(1)) {
    augmentation.push_back(static_cast<char>(c));
  }
  if (version == 4 && (body.fixed(1) != 8 || body.fixed(1) != 0)) {
    why = "unsupported CIE address or segment size";
    return false;
  }
  cie.codeAlignment = body.uleb();
  cie.dataAlignment = body.sleb();
  if (version == 1) body.fixed(1); else body.uleb();  // return column: the caller names it
  if (!body.ok()) {
    why = "truncated CIE";
    return false;
  }
  if (!augmentation.empty() && augmentation[0] != 'z') {
    // Without 'z' nothing says how long unknown augmentation data is.
    why = "unsupported CIE augmentation";
    return false;
  }
  if (!augmentation.empty()) {
    cie.hasAugmentationData = true;
    Cursor data = body.sub(body.uleb());
    bool readable = true;
    for (size_t i = 1; i < augmentation.size(); ++i) {
      switch (augmentation[i]) {
        case 'R': cie.fdeEncoding = static_cast<uint8_t>(data.fixed(1)); break;
        case 'L': data.fixed(1); break;  // the LSDA pointer's encoding; FDEs skip it by length
        case 'P': {
          // Skipped, never followed: an indirect personality is harmless here.
          const uint8_t encoding = static_cast<uint8_t>(data.fixed(1));
          uint64_t ignored = 0;
          if (encoding != kPeOmit) readable = readable && readValue(data, encoding, ignored);
          break;
        }
        case 'S':  // signal frame
        case 'B':  // arm64 pointer authentication with the B key
        case 'G':  // arm64 memory tagging of the stack
          break;
        default:
          why = "unsupported CIE augmentation";
          return false;
      }
    }
    if (!readable || !data.ok()) {
      why = "malformed CIE augmentation data";
      return false;
    }
  }
  cie.instructions = body;
  return body.ok();
}

// How a register of the caller is recovered.
enum class Saved : uint8_t { kInPlace, kLost, kOnStack, kElsewhere };

struct Recovery {
  Saved how = Saved::kInPlace;
  int64_t offset = 0;
};

struct FrameState {
  uint64_t cfaRegister = kNoRegister;
  int64_t cfaOffset = 0;
  bool cfaByExpression = false;
  Recovery framePointer, returnAddress;
  bool stopped = false;  // met an opcode we cannot decode: nothing after it is known
};

FrameRule toRule(const FrameState& state) {
  FrameRule rule;
  // A lost frame pointer cannot be handed to the caller; a lost return address means there is no
  // caller. A value moved to another register or computed by an expression is not interpreted.
  if (state.stopped || state.cfaByExpression || state.cfaRegister > uint64_t(INT_MAX) ||
      state.framePointer.how == Saved::kLost || state.framePointer.how == Saved::kElsewhere ||
      state.returnAddress.how == Saved::kLost || state.returnAddress.how == Saved::kElsewhere) {
    return rule;
  }
  rule.known = true;
  rule.cfaRegister = static_cast<int>(state.cfaRegister);
  rule.cfaOffset = state.cfaOffset;
  rule.returnSaved = state.returnAddress.how == Saved::kOnStack;
  rule.returnOffset = rule.returnSaved ? state.returnAddress.offset : 0;
  rule.framePointerSaved = state.framePointer.how == Saved::kOnStack;
  rule.framePointerOffset = rule.framePointerSaved ? state.framePointer.offset : 0;
  return rule;
}

// Two's-complement products: a hostile factor must not be undefined behaviour.
int64_t scaled(uint64_t value, int64_t factor) {
  return static_cast<int64_t>(value * static_cast<uint64_t>(factor));
}
int64_t scaled(int64_t value, int64_t factor) {
  return scaled(static_cast<uint64_t>(value), factor);
}

struct Program {
  const Cie* cie = nullptr;
  const PointerBase* base = nullptr;
  uint64_t framePointerRegister = 0, returnRegister = 0;
  const FrameState* initial = nullptr;  // the CIE's state, for restore; null while running the CIE
};

void setRecovery(FrameState& state, const Program& program, uint64_t reg, Recovery recovery) {
  if (reg == program.framePointerRegister) state.framePointer = recovery;
  if (reg == program.returnRegister) state.returnAddress = recovery;
}

void restoreRecovery(FrameState& state, const Program& program, uint64_t reg) {
  const FrameState fallback;
  const FrameState& initial = program.initial ? *program.initial : fallback;
  if (reg == program.framePointerRegister) state.framePointer = initial.framePointer;
  if (reg == program.returnRegister) state.returnAddress = initial.returnAddress;
}

void emitRow(std::vector<FrameRow>* rows, uint64_t from, uint64_t to, const FrameState& state) {
  if (!rows || from >= to) return;
  rows->push_back(FrameRow{from, to, toRule(state)});
}

// Runs call frame instructions from `state` at `location`. With `rows`, each location advance
// emits the row it closes, clipped to `end`; the caller emits the last one. Stops early, with
// `state.stopped`, at an opcode whose operands it cannot size.
bool execute(Cursor code, const Program& program, FrameState& state, uint64_t& location,
             uint64_t end, std::vector<FrameRow>* rows, std::string& why) {
  std::vector<FrameState> remembered;
  auto moveTo = [&](uint64_t next) {
    if (next < location || !program.initial) {
      why = program.initial ? "frame location moves backwards" : "location advance inside a CIE";
      return false;
    }
    emitRow(rows, location, std::min(next, end), state);
    location = next;
    return true;
  };
  auto advance = [&](uint64_t delta) {
    const uint64_t step = delta * program.cie->codeAlignment;
    if (delta != 0 && step / delta != program.cie->codeAlignment) {
      why = "location advance overflows";
      return false;
    }
    if (location + step < location) {
      why = "location advance overflows";
      return false;
    }
    return moveTo(location + step);
  };
  const int64_t dataAlignment = program.cie->dataAlignment;
  while (!code.atEnd()) {
    const uint8_t opcode = static_cast<uint8_t>(code.fixed(1));
    const uint8_t low = opcode & 0x3f;
    bool ok = true;
    switch (opcode & 0xc0) {
      case 0x40: ok = advance(low); break;  // DW_CFA_advance_loc
      case 0x80:                            // DW_CFA_offset
        setRecovery(state, program, low, {Saved::kOnStack, scaled(code.uleb(), dataAlignment)});
        break;
      case 0xc0: restoreRecovery(state, program, low); break;  // DW_CFA_restore
      default:
        switch (opcode) {
          case 0x00: break;  // DW_CFA_nop
          case 0x01: {       // DW_CFA_set_loc
            uint64_t next = 0;
            if (!readPointer(code, program.cie->fdeEncoding, *program.base, next)) {
              why = "unreadable DW_CFA_set_loc";
              return false;
            }
            ok = moveTo(next);
            break;
          }
          case 0x02: ok = advance(code.fixed(1)); break;  // DW_CFA_advance_loc1
          case 0x03: ok = advance(code.fixed(2)); break;  // DW_CFA_advance_loc2
          case 0x04: ok = advance(code.fixed(4)); break;  // DW_CFA_advance_loc4
          case 0x05: {                                    // DW_CFA_offset_extended
            const uint64_t reg = code.uleb();
            setRecovery(state, program, reg, {Saved::kOnStack, scaled(code.uleb(), dataAlignment)});
            break;
          }
          case 0x06: restoreRecovery(state, program, code.uleb()); break;  // restore_extended
          case 0x07: setRecovery(state, program, code.uleb(), {Saved::kLost, 0}); break;
          case 0x08: setRecovery(state, program, code.uleb(), {Saved::kInPlace, 0}); break;
          case 0x09: {  // DW_CFA_register: a value moved to another register
            const uint64_t reg = code.uleb();
            code.uleb();
            setRecovery(state, program, reg, {Saved::kElsewhere, 0});
            break;
          }
          case 0x0a:  // DW_CFA_remember_state
            if (remembered.size() == kMaxRememberedStates) {
              why = "DW_CFA_remember_state nested too deep";
              return false;
            }
            remembered.push_back(state);
            break;
          case 0x0b:  // DW_CFA_restore_state: the CFA rule comes back too, as GCC and readelf agree
            if (remembered.empty()) {
              why = "DW_CFA_restore_state without remember_state";
              return false;
            }
            state = remembered.back();
            remembered.pop_back();
            break;
          case 0x0c:  // DW_CFA_def_cfa
            state.cfaRegister = code.uleb();
            state.cfaOffset = static_cast<int64_t>(code.uleb());
            state.cfaByExpression = false;
            break;
          case 0x0d: state.cfaRegister = code.uleb(); break;  // def_cfa_register
          case 0x0e: state.cfaOffset = static_cast<int64_t>(code.uleb()); break;  // def_cfa_offset
          case 0x0f:  // DW_CFA_def_cfa_expression
            code.skip(code.uleb());
            state.cfaByExpression = true;
            break;
          case 0x10:    // DW_CFA_expression
          case 0x16: {  // DW_CFA_val_expression
            const uint64_t reg = code.uleb();
            code.skip(code.uleb());
            setRecovery(state, program, reg, {Saved::kElsewhere, 0});
            break;
          }
          case 0x11: {  // DW_CFA_offset_extended_sf
            const uint64_t reg = code.uleb();
            setRecovery(state, program, reg, {Saved::kOnStack, scaled(code.sleb(), dataAlignment)});
            break;
          }
          case 0x12:  // DW_CFA_def_cfa_sf
            state.cfaRegister = code.uleb();
            state.cfaOffset = scaled(code.sleb(), dataAlignment);
            state.cfaByExpression = false;
            break;
          case 0x13: state.cfaOffset = scaled(code.sleb(), dataAlignment); break;  // offset_sf
          case 0x14:    // DW_CFA_val_offset: the value itself is CFA-relative, not stored there
          case 0x15: {  // DW_CFA_val_offset_sf
            const uint64_t reg = code.uleb();
            if (opcode == 0x14) code.uleb(); else code.sleb();
            setRecovery(state, program, reg, {Saved::kElsewhere, 0});
            break;
          }
          case 0x2e: code.uleb(); break;  // DW_CFA_GNU_args_size
          default:
            state.stopped = true;
            return true;
        }
    }
    if (!ok) return false;
    if (!code.ok()) {
      why = "truncated call frame instruction";
      return false;
    }
  }
  return true;
}

bool locateEhFrame(const VdsoImage& image, uint64_t& start, uint64_t& end, std::string& error) {
  uint64_t headerOffset = 0, headerSize = 0, sectionOffset = 0, sectionSize = 0;
  const bool haveSection = image.findSection(".eh_frame", sectionOffset, sectionSize);
  if (image.findSegment(0x6474e550 /* PT_GNU_EH_FRAME */, headerOffset, headerSize)) {
    if (headerOffset > image.size() || headerSize > image.size() - headerOffset) {
      error = ".eh_frame_hdr lies outside the image";
      return false;
    }
    Cursor header(image.bytes(), headerOffset, headerOffset + headerSize);
    const uint64_t version = header.fixed(1);
    const uint8_t pointerEncoding = static_cast<uint8_t>(header.fixed(1));
    header.skip(2);  // the FDE count's and search table's encodings
    const PointerBase base{&image, true, headerOffset};
    if (version != 1 || !readPointer(header, pointerEncoding, base, start)) {
      error = "unreadable .eh_frame_hdr";
      return false;
    }
    // Section headers give the size when they are there; otherwise a zero terminator ends it.
    end = haveSection && sectionOffset == start ? start + sectionSize : image.elfEnd();
  } else if (haveSection) {
    start = sectionOffset;
    end = sectionOffset + sectionSize;
  } else {
    error = "the vDSO has no .eh_frame";
    return false;
  }
  if (start > image.size() || end > image.size() || end < start) {
    error = ".eh_frame lies outside the image";
    return false;
  }
  return true;
}

std::string describe(const char* what, uint64_t at, uint64_t sectionStart) {
  char text[160];
  std::snprintf(text, sizeof text, "malformed .eh_frame at +0x%llx: %s",
                static_cast<unsigned long long>(at - sectionStart), what);
  return text;
}

}  // namespace

bool FrameTable::parse(const VdsoImage& image, int framePointerRegister, int returnRegister,
                       std::string& error) {
  rows_.clear();
  uint64_t start = 0, end = 0;
  if (!locateEhFrame(image, start, end, error)) return false;
  const PointerBase base{&image, false, 0};
  std::vector<FrameRow> rows;
  std::string why;
  Cursor section(image.bytes(), start, end);
  while (!section.atEnd()) {
    const uint64_t at = section.pos();
    Record record;
    if (!readRecord(section, record)) {
      error = describe("truncated record", at, start);
      return false;
    }
    if (record.terminator) break;
    if (record.isCie) continue;  // read when an FDE names it

    Cursor cieSection(image.bytes(), record.ciePosition, end);
    Record cieRecord;
    Cie cie;
    if (record.ciePosition < start || !readRecord(cieSection, cieRecord) || !cieRecord.isCie) {
      error = describe("FDE without a CIE", at, start);
      return false;
    }
    if (!parseCie(cieRecord.body, cie, why)) {
      error = describe(why.c_str(), record.ciePosition, start);
      return false;
    }

    Cursor body = record.body;
    uint64_t pcBegin = 0, pcRange = 0;
    if (!readPointer(body, cie.fdeEncoding, base, pcBegin) ||
        !readValue(body, cie.fdeEncoding, pcRange)) {
      error = describe("unreadable FDE address range", at, start);
      return false;
    }
    if (pcBegin > image.size() || pcRange > image.size() - pcBegin) {
      error = describe("FDE covers code outside the image", at, start);
      return false;
    }
    if (cie.hasAugmentationData) body.skip(body.uleb());
    if (!body.ok()) {
      error = describe("truncated FDE", at, start);
      return false;
    }

    Program program{&cie, &base, uint64_t(framePointerRegister), uint64_t(returnRegister), nullptr};
    FrameState initial;
    uint64_t location = pcBegin;
    if (!execute(cie.instructions, program, initial, location, pcBegin, nullptr, why)) {
      error = describe(why.c_str(), record.ciePosition, start);
      return false;
    }
    program.initial = &initial;
    FrameState state = initial;
    if (!execute(body, program, state, location, pcBegin + pcRange, &rows, why)) {
      error = describe(why.c_str(), at, start);
      return false;
    }
    emitRow(&rows, location, pcBegin + pcRange, state);
  }

  std::sort(rows.begin(), rows.end(),
            [](const FrameRow& a, const FrameRow& b) { return a.start < b.start; });
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].start < rows[i - 1].end) {
      // Two descriptions of one instruction: guessing which is right is not an option.
      error = "malformed .eh_frame: FDEs overlap";
      return false;
    }
  }
  rows_ = std::move(rows);
  return true;
}

FrameRule FrameTable::lookup(uint64_t offset) const {
  auto after = std::upper_bound(rows_.begin(), rows_.end(), offset,
                                [](uint64_t value, const FrameRow& row) { return value < row.start; });
  if (after == rows_.begin()) return FrameRule{};
  const FrameRow& row = *(after - 1);
  return offset < row.end ? row.rule : FrameRule{};
}

}  // namespace timeskew
