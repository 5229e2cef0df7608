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

 private:
  const uint8_t* bytes_ = nullptr;
  size_t size_ = 0;
  ElfMachine machine_ = ElfMachine::kOther;
  size_t elfEnd_ = 0;
  uint64_t dynsymOffset_ = 0, dynsymSize_ = 0, dynsymEntrySize_ = 0;
  uint64_t dynstrOffset_ = 0, dynstrSize_ = 0;
  uint64_t loadVaddr_ = 0, loadOffset_ = 0;
};

}  // namespace timeskew
