// Whether a stopped thread is, or will return, into bytes we are about to take away.
//
// A thread is "in flight" when it executes our blob (a fake or a trampoline), or executes
// original vDSO code on behalf of a fake (the fake's call is the return address of the outermost
// vDSO frame), or when a signal interrupted it in either of those places and it now runs the
// handler, which will return there. The vDSO's frames are unwound exactly with its own DWARF
// call-frame information; signal frames are found by their saved-context signature just above
// the stack pointer.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "frame_table.h"
#include "x86_64/dwarf_registers.h"
#include "proc.h"

namespace timeskew::x86_64 {

struct FlightView {
  pid_t memoryPid = 0;
  AddressRange vdso;
  AddressRange blob;
  // Null when the vDSO carries no usable unwind table: then any thread inside the vDSO counts.
  const FrameTable* frames = nullptr;
};

// A place a thread will execute next: its registers, or a context saved by a signal.
struct CodePosition {
  uint64_t ip = 0;
  uint64_t sp = 0;
  uint64_t fp = 0;
  bool fromSignalFrame = false;
  uint64_t savedAt = 0;  // for a signal frame: where its saved rip lives in the target
};

// Positions the thread will resume at: its own registers first, then every signal context
// found above its stack pointer. False when the registers cannot be read (thread gone).
bool collectPositions(pid_t memoryPid, pid_t tid, std::vector<CodePosition>& positions);

bool isInFlight(const FlightView& view, const std::vector<CodePosition>& positions);

}  // namespace timeskew::x86_64
