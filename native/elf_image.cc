#include "elf_image.h"

#include <elf.h>

#include <algorithm>
#include <cstring>

namespace timeskew {

namespace {
template <typename T>
bool readAt(const uint8_t* bytes, size_t size, uint64_t offset, T& out) {
  if (offset > size || size - offset < sizeof(T)) return false;
  std::memcpy(&out, bytes + offset, sizeof(T));
  return true;
}
}  // namespace

bool VdsoImage::parse(const uint8_t* bytes, size_t size, std::string& error,
                      bool& unsupportedClass) {
  bytes_ = bytes;
  size_ = size;
  unsupportedClass = false;
  if (size < EI_NIDENT || std::memcmp(bytes, ELFMAG, SELFMAG) != 0) {
    error = "the vDSO mapping does not start with an ELF header";
    return false;
  }
  if (bytes[EI_CLASS] == ELFCLASS32) {
    unsupportedClass = true;
    error = "32-bit vDSO (a 32-bit process)";
    return false;
  }
  Elf64_Ehdr header;
  if (bytes[EI_CLASS] != ELFCLASS64 || !readAt(bytes, size, 0, header)) {
    error = "unknown ELF class";
    return false;
  }
  machine_ = header.e_machine == EM_X86_64    ? ElfMachine::kX86_64
             : header.e_machine == EM_AARCH64 ? ElfMachine::kAarch64
                                              : ElfMachine::kOther;

  programOffset_ = header.e_phoff;
  programEntrySize_ = header.e_phentsize;
  programCount_ = header.e_phnum;
  sectionOffset_ = header.e_shoff;
  sectionEntrySize_ = header.e_shentsize;
  sectionCount_ = header.e_shnum;
  sectionNamesIndex_ = header.e_shstrndx;

  uint64_t end = header.e_shoff + uint64_t(header.e_shnum) * header.e_shentsize;
  bool haveLoad = false;
  for (unsigned i = 0; i < header.e_phnum; ++i) {
    Elf64_Phdr program;
    if (!readAt(bytes, size, header.e_phoff + uint64_t(i) * header.e_phentsize, program)) break;
    if (program.p_type != PT_LOAD) continue;
    end = std::max<uint64_t>(end, program.p_offset + program.p_filesz);
    if (!haveLoad) {
      loadVaddr_ = program.p_vaddr;
      loadOffset_ = program.p_offset;
      haveLoad = true;
    }
  }
  if (!haveLoad) {
    error = "the vDSO has no loadable segment";
    return false;
  }
  for (unsigned i = 0; i < header.e_shnum; ++i) {
    Elf64_Shdr section;
    if (!readAt(bytes, size, header.e_shoff + uint64_t(i) * header.e_shentsize, section)) {
      error = "truncated section header table";
      return false;
    }
    if (section.sh_type != SHT_NOBITS) end = std::max<uint64_t>(end, section.sh_offset + section.sh_size);
    if (section.sh_type == SHT_DYNSYM) {
      dynsymOffset_ = section.sh_offset;
      dynsymSize_ = section.sh_size;
      dynsymEntrySize_ = section.sh_entsize ? section.sh_entsize : sizeof(Elf64_Sym);
      Elf64_Shdr strings;
      if (readAt(bytes, size, header.e_shoff + uint64_t(section.sh_link) * header.e_shentsize,
                 strings)) {
        dynstrOffset_ = strings.sh_offset;
        dynstrSize_ = strings.sh_size;
      }
    }
  }
  if (dynsymSize_ == 0 || dynstrSize_ == 0 || dynstrOffset_ + dynstrSize_ > size ||
      dynsymOffset_ + dynsymSize_ > size) {
    error = "the vDSO has no readable dynamic symbol table";
    return false;
  }
  if (end > size) {
    error = "the ELF file is larger than the mapping";
    return false;
  }
  elfEnd_ = static_cast<size_t>(end);
  return true;
}

bool VdsoImage::findSymbol(const char* name, ElfSymbol& symbol) const {
  const size_t nameLength = std::strlen(name);
  for (uint64_t at = dynsymOffset_; at + sizeof(Elf64_Sym) <= dynsymOffset_ + dynsymSize_;
       at += dynsymEntrySize_) {
    Elf64_Sym entry;
    std::memcpy(&entry, bytes_ + at, sizeof entry);
    if (ELF64_ST_TYPE(entry.st_info) != STT_FUNC || entry.st_name >= dynstrSize_) continue;
    const char* candidate = reinterpret_cast<const char*>(bytes_ + dynstrOffset_ + entry.st_name);
    const size_t room = dynstrSize_ - entry.st_name;
    if (room <= nameLength || std::memcmp(candidate, name, nameLength + 1) != 0) continue;
    const uint64_t offset = entry.st_value - loadVaddr_ + loadOffset_;
    if (offset >= size_ || entry.st_size > size_ - offset) return false;
    symbol.offset = offset;
    symbol.size = entry.st_size;
    return true;
  }
  return false;
}

bool VdsoImage::findSegment(uint32_t type, uint64_t& offset, uint64_t& size) const {
  for (uint64_t i = 0; i < programCount_; ++i) {
    Elf64_Phdr program;
    if (!readAt(bytes_, size_, programOffset_ + i * programEntrySize_, program)) return false;
    if (program.p_type != type) continue;
    offset = program.p_offset;
    size = program.p_filesz;
    return true;
  }
  return false;
}

bool VdsoImage::findSection(const char* name, uint64_t& offset, uint64_t& size) const {
  Elf64_Shdr names;
  if (!readAt(bytes_, size_, sectionOffset_ + sectionNamesIndex_ * sectionEntrySize_, names) ||
      names.sh_offset > size_ || names.sh_size > size_ - names.sh_offset) {
    return false;
  }
  const size_t nameLength = std::strlen(name);
  for (uint64_t i = 0; i < sectionCount_; ++i) {
    Elf64_Shdr section;
    if (!readAt(bytes_, size_, sectionOffset_ + i * sectionEntrySize_, section)) return false;
    if (section.sh_name >= names.sh_size || names.sh_size - section.sh_name <= nameLength) continue;
    if (std::memcmp(bytes_ + names.sh_offset + section.sh_name, name, nameLength + 1) != 0) continue;
    offset = section.sh_offset;
    size = section.sh_size;
    return true;
  }
  return false;
}

}  // namespace timeskew
