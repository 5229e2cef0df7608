// The code timeskew places in the target on x86_64: one fake per hooked vDSO function. Each fake
// checks whether its clock is selected, calls the trampoline (the original vDSO code, or a raw
// syscall in fallback mode) and adds the offset read under the control word. The fakes touch
// only general-purpose registers (Go keeps X15 zero), use at most 24 bytes of stack (plus the return address of their call into the trampoline) and
// call nothing else.
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
  // Added in layout 4. A fake's inline region (size 0: it has none; only time() has one): the
  // planner fills it with a relocated copy of the whole original function, whose final `ret` is
  // dropped so that it falls through to returnOffset. The fake then makes no call at all, and a
  // thread inside the region is in our code, a few instructions before returnOffset. When the
  // function cannot be copied (or in syscall mode) the region keeps what is assembled here: a
  // jump to its last 5 bytes, `call trampoline`, which returns to returnOffset as before.
  // The region is per kernel, so it lies before TS_CODE_OFFSET (like the trampolines, it is not
  // part of the code compared by blobCodeIsOurs); it ends exactly at returnOffset.
  uint32_t inlineOffset[kHookCount];
  uint32_t inlineSize[kHookCount];
  // Added in layout 4. Each fake's out-of-line post-call code sits after its ret, in
  // (exitOffset[i], tailEnd[i]), so that the common path runs straight from returnOffset to the
  // ret: retry stubs (back to the fake's loop before its call or copy, registers still pushed),
  // drift/carry blocks (back into [returnOffset[i], exitOffset[i])), time()'s store to *t (to
  // exitOffset). A thread there has read the time and leaves through one of the exits, except
  // on a retry, where it reads it again. clock_gettime and gettimeofday share one such block
  // (the drift and sub-second carry), which lies in gettimeofday's tail and jumps back to the
  // fake it came from.
  uint32_t tailEnd[kHookCount];
};

const PayloadLayout& payloadLayout();
bool payloadLayoutIsConsistent();

}  // namespace timeskew::x86_64
