// A vDSO image as mapped: an ELF shared object followed by zero padding up to the page end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace timeskew {

enum class ElfMachine { kX86_64, kAarch64, kOther };

struct ElfSymbol {
  uint64_t offset = 0;  // from the start of the image
  uint64_t size = 0;
};

class VdsoImage {
 public:
  // Parses `bytes` (not copied: the caller keeps them alive). On failure returns false and sets
  // `error`; `unsupportedClass` is set for a 32-bit image, which means a 32-bit process.
  bool parse(const uint8_t* bytes, size_t size, std::string& error, bool& unsupportedClass);

  const uint8_t* bytes() const { return bytes_; }
  size_t size() const { return size_; }
  ElfMachine machine() const { return machine_; }
  // First byte past everything the ELF file describes; the rest of the mapping is free padding.
  size_t elfEnd() const { return elfEnd_; }
  bool findSymbol(const char* name, ElfSymbol& symbol) const;
  // File extent of the first program header of `type` (PT_GNU_EH_FRAME, ...).
  bool findSegment(uint32_t type, uint64_t& offset, uint64_t& size) const;
  // File extent of the section called `name`, when the image still has section headers.
  bool findSection(const char* name, uint64_t& offset, uint64_t& size) const;
  // Image offset of a link-time address; wraps for addresses outside the image, so bound-check it.
  uint64_t offsetOfVaddr(uint64_t vaddr) const { return vaddr - loadVaddr_ + loadOffset_; }

 private:
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  ElfMachine machine_ = ElfMachine::kOther;
  size_t elfEnd_ = 0;
  uint64_t dynsymOffset_ = 0, dynsymSize_ = 0, dynsymEntrySize_ = 0;
  uint64_t dynstrOffset_ = 0, dynstrSize_ = 0;
  uint64_t loadVaddr_ = 0, loadOffset_ = 0;
  uint64_t programOffset_ = 0, programEntrySize_ = 0, programCount_ = 0;
  uint64_t sectionOffset_ = 0, sectionEntrySize_ = 0, sectionCount_ = 0, sectionNamesIndex_ = 0;
};

}  // namespace timeskew
