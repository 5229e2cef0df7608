// The x86_64 hook planner: vDSO image bytes in, patch plan out. Pure (no process is touched), so
// it is unit-tested on the vDSO images of many kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "blob_layout.h"
#include "elf_image.h"

namespace timeskew::x86_64 {

struct FunctionPlan {
  bool hooked = false;
  const char* symbol = "";
  uint64_t functionOffset = 0;
  uint64_t functionSize = 0;
  uint8_t patchAt = 0;          // 4 after endbr64, else 0
  uint8_t displacedLength = 0;  // bytes of original code copied into the trampoline
  HookMode mode = kTrampoline;
  std::string reason;           // why the syscall fallback was chosen
  int relocations = 0;
  uint8_t trampoline[TS_TRAMPOLINE_SIZE] = {};
  uint8_t trampolineLength = 0;
  // Instruction starts inside the displaced bytes (from the patch point) and where each one
  // starts in the trampoline, to move a thread that was stopped between them.
  uint8_t boundaryCount = 0;
  uint8_t originalBoundary[8] = {};
  uint8_t trampolineBoundary[8] = {};
  // The aligned window rewritten to flip the entry, and its bytes before and after.
  uint64_t regionOffset = 0;
  uint8_t regionLength = 0;
  uint8_t original[16] = {};
  uint8_t patched[16] = {};
  // time() only: the whole original function, relocated into the fake's inline region (see
  // PayloadLayout::inlineOffset), so that the fake reads the time without a call. Empty when
  // the function could not be copied: the region then keeps its call to the trampoline.
  bool inlined = false;
  std::string inlineReason;  // why not
  uint8_t inlineCode[64] = {};
  uint8_t inlineLength = 0;  // == the region's size when inlined

  uint64_t patchOffset() const { return functionOffset + patchAt; }
};

struct HookPlan {
  bool ok = false;
  std::string error;
  size_t blobOffset = 0;   // where the blob goes in the image (16-aligned, after the ELF end)
  size_t freeBytes = 0;    // padding after the ELF end
  size_t neededBytes = 0;  // blob size
  FunctionPlan functions[kHookCount];
};

// Plans hooks for a pristine image (the caller removes an earlier timeskew patch first).
HookPlan planHooks(const VdsoImage& image, bool forceSyscall);

}  // namespace timeskew::x86_64
