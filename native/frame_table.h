// Where a stopped thread's caller is, read from the vDSO's own DWARF call frame information
// (.eh_frame). The engine needs it to tell a return address on the stack from any other word when
// a thread is stopped inside original vDSO code. Arch-neutral: registers are DWARF numbers and the
// caller names the two that matter (frame pointer and return address).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "elf_image.h"

namespace timeskew {

// How to find the caller's frame at one code offset (DWARF register numbers; arch-neutral).
struct FrameRule {
  bool known = false;        // false: no FDE covers this offset, or a rule we do not interpret
  int cfaRegister = -1;      // DWARF register number the CFA is computed from
  int64_t cfaOffset = 0;     // CFA = reg + cfaOffset
  bool returnSaved = false;  // false (when known): the return address is still in its register
  int64_t returnOffset = 0;  // return address at CFA + returnOffset
  bool framePointerSaved = false;  // false (when known): the caller's frame pointer is unchanged
  int64_t framePointerOffset = 0;  // caller's frame pointer at CFA + framePointerOffset
};

// One run of code offsets [start, end) that share a rule.
struct FrameRow {
  uint64_t start = 0;
  uint64_t end = 0;
  FrameRule rule;
};

class FrameTable {
 public:
  // image: the vDSO as mapped (offset 0 = ELF header). framePointerRegister / returnRegister:
  // DWARF numbers (x86_64: 6 and 16; arm64: 29 and 30). Returns false with `error` when .eh_frame
  // is missing or malformed; the table is then empty.
  bool parse(const VdsoImage& image, int framePointerRegister, int returnRegister,
             std::string& error);
  // `offset` from the image start; an unknown rule when no row covers it.
  FrameRule lookup(uint64_t offset) const;
  // Sorted by start, never overlapping; gaps are offsets no FDE describes.
  const std::vector<FrameRow>& rows() const { return rows_; }

 private:
  std::vector<FrameRow> rows_;
};

}  // namespace timeskew
