// The code timeskew places in the target on x86_64: one fake per hooked vDSO function. Each fake
// checks whether its clock is selected, calls the trampoline (the original vDSO code, or a raw
// syscall in fallback mode) and adds the offset read under the control word. The fakes touch
// only general-purpose registers (Go keeps X15 zero), use 24 bytes of stack and call nothing else.
#pragma once

#include <cstddef>
#include <cstdint>

#include "blob_layout.h"

namespace timeskew::x86_64 {

struct PayloadLayout {
  const uint8_t* bytes;  // the assembled blob: header and slots zero, trampolines empty
  size_t size;
  uint32_t fakeOffset[kHookCount];  // from the blob start
  uint32_t trampolineOffset[kHookCount];
  // Where each fake's call into its trampoline returns: the one address of ours that can sit on
  // a thread's stack while it runs original vDSO code.
  uint32_t returnOffset[kHookCount];
  // Each fake's single `ret`: every call that went through a fake leaves through it.
  uint32_t exitOffset[kHookCount];
};

const PayloadLayout& payloadLayout();
bool payloadLayoutIsConsistent();

}  // namespace timeskew::x86_64
