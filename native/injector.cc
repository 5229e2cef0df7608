#include "injector.h"

#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "arch.h"
#include "elf_image.h"
#include "proc.h"
#include "stop_world.h"
#include "target_memory.h"

namespace timeskew {

namespace {

// A thread single-stepped out of hook code never needs more than a few hundred instructions;
// the cap only guards against a thread that loops inside the vDSO for another reason.
constexpr int kMaxSteps = 100000;

struct Target {
  pid_t pid = 0;
  AddressRange vdso;
  std::vector<uint8_t> bytes;
  VdsoImage image;
  size_t blobOffset = 0;
  bool hasBlob = false;
  BlobHeader header{};

  uint64_t address(uint64_t offset) const { return vdso.start + offset; }
};

Status notSupported() {
  return failure("ENOTSUP", 0, nullptr,
                 "timeskew supports x86_64 Linux; arm64 is planned",
                 "this architecture (%s) is not supported", arch::kName);
}

// Checks that can be made without stopping anything, so that bad targets are refused untouched.
Status checkTarget(pid_t pid, AddressRange& vdso) {
  ProcessInfo info;
  if (!readProcessInfo(pid, info)) return systemFailure(errno, "open", "/proc/PID/stat");
  if (info.state == 'Z' || info.state == 'X') {
    return failure("ESRCH", ESRCH, nullptr,
                   "the process has exited and waits for its parent to reap it",
                   "process %d is a zombie", pid);
  }
  if (info.flags & kKernelThreadFlag) {
    return failure("ENOTSUP", 0, nullptr, "kernel threads have no user-space clock to skew",
                   "process %d is a kernel thread (no vDSO)", pid);
  }
  int error = 0;
  if (!findVdsoMapping(pid, vdso, error)) {
    if (error != 0) return systemFailure(error, "open", "/proc/PID/maps");
    return failure("ENOTSUP", 0, nullptr,
                   "the process has no vDSO (kernel thread, or booted with vdso=0)",
                   "process %d has no [vdso] mapping", pid);
  }
  return Status::success();
}

Status readTarget(pid_t pid, const AddressRange& vdso, Target& target) {
  target.pid = pid;
  target.vdso = vdso;
  target.bytes.resize(vdso.end - vdso.start);
  if (!readTargetMemory(pid, vdso.start, target.bytes.data(), target.bytes.size())) {
    return systemFailure(errno, "process_vm_readv", "reading the vDSO");
  }
  std::string error;
  bool wrongClass = false;
  if (!target.image.parse(target.bytes.data(), target.bytes.size(), error, wrongClass)) {
    if (wrongClass) {
      return failure("ENOTSUP", 0, nullptr, "only 64-bit processes are supported",
                     "process %d is a 32-bit process", pid);
    }
    return failure("ENOTSUP", 0, nullptr, nullptr, "unusable vDSO: %s", error.c_str());
  }
  if (target.image.machine() != ElfMachine::kX86_64 || !arch::kSupported) return notSupported();
  target.blobOffset = (target.image.elfEnd() + 15) & ~size_t{15};
  if (target.blobOffset + sizeof(BlobHeader) <= target.bytes.size()) {
    std::memcpy(&target.header, target.bytes.data() + target.blobOffset, sizeof target.header);
    target.hasBlob = std::memcmp(target.header.magic, kBlobMagic, sizeof kBlobMagic) == 0;
  }
  if (target.hasBlob && (target.header.layout != kLayoutVersion ||
                         target.blobOffset + target.header.blobSize > target.bytes.size())) {
    return failure("EBUSY", EBUSY, nullptr,
                   "restore it with the timeskew version that installed it",
                   "process %d carries a skew of another timeskew layout (%u)", pid,
                   target.header.layout);
  }
  return Status::success();
}

Status loadTarget(pid_t pid, Target& target) {
  AddressRange vdso;
  Status status = checkTarget(pid, vdso);
  if (!status.ok) return status;
  return readTarget(pid, vdso, target);
}

Status writeFailure(const char* what) { return systemFailure(errno, "pwrite", what); }

void fillReport(StoppedProcess& world, OperationReport& report) {
  world.release();
  report.threads = static_cast<int>(world.threads().size());
  report.pauseNs = world.releasedNs() - world.firstStopNs();
  report.maxThreadPauseNs = world.maxThreadPauseNs();
}

#if defined(__x86_64__)
// The installed code is byte for byte what this build would write: then our knowledge of where
// its fakes return to holds for the target too.
bool blobCodeIsOurs(const Target& target) {
  const arch::PayloadLayout& payload = arch::payloadLayout();
  if (target.header.blobSize != payload.size) return false;
  std::vector<uint8_t> installed(target.bytes.begin() + target.blobOffset + TS_CODE_OFFSET,
                                 target.bytes.begin() + target.blobOffset + payload.size);
  // Trampolines differ per kernel: compare everything else.
  for (uint32_t trampoline : payload.trampolineOffset) {
    std::memcpy(installed.data() + (trampoline - TS_CODE_OFFSET), payload.bytes + trampoline,
                TS_TRAMPOLINE_SIZE);
  }
  return std::memcmp(installed.data(), payload.bytes + TS_CODE_OFFSET, installed.size()) == 0;
}

// Whether a thread in original vDSO code was called by one of our fakes. The fake's return
// address then sits where this function keeps its own: at [rsp] (a leaf like time(), or at its
// final ret), [rsp + 8] (just after `push %rbp`), or [rbp + 8] (once the frame pointer is set,
// which the vDSO's time functions do in their first instructions). Only those slots are looked
// at: deeper stack words may be stale copies left by earlier calls.
bool returnsIntoFake(const Target& target, pid_t tid) {
  uint64_t sp = 0, bp = 0;
  uint64_t top[2] = {};
  uint64_t frame = 0;
  if (!arch::readStackPointer(tid, sp) || !arch::readFramePointer(tid, bp) ||
      !readTargetMemory(target.pid, sp, top, sizeof top)) {
    return true;  // cannot tell: treat as in flight
  }
  const bool haveFrame = readTargetMemory(target.pid, bp + 8, &frame, sizeof frame);
  const arch::PayloadLayout& payload = arch::payloadLayout();
  for (uint32_t offset : payload.returnOffset) {
    const uint64_t fakeReturn = target.address(target.blobOffset + offset);
    if (top[0] == fakeReturn || top[1] == fakeReturn || (haveFrame && frame == fakeReturn)) {
      return true;
    }
  }
  return false;
}
#else
bool blobCodeIsOurs(const Target&) { return false; }
bool returnsIntoFake(const Target&, pid_t) { return true; }
#endif

#if defined(__x86_64__)
// Where a thread stands relative to our code, once entries point back at the original code.
enum class Flight { kClear, kInBlob, kCalledFromFake, kAtExit };

Flight classify(const Target& target, const AddressRange& blobRange, pid_t tid, uint64_t ip) {
  const arch::PayloadLayout& payload = arch::payloadLayout();
  const uint64_t blob = target.address(target.blobOffset);
  for (int i = 0; i < kHookCount; ++i) {
    if (ip == blob + payload.exitOffset[i]) return Flight::kAtExit;
    // Between the return from the trampoline and the ret: post-processing, runs to the exit.
    if (ip >= blob + payload.returnOffset[i] && ip < blob + payload.exitOffset[i]) {
      return Flight::kCalledFromFake;
    }
  }
  if (target.vdso.contains(ip) && returnsIntoFake(target, tid)) return Flight::kCalledFromFake;
  return blobRange.contains(ip) ? Flight::kInBlob : Flight::kClear;
}

// Gets every thread out of our code without single-stepping through whole vDSO functions:
// a thread on its way in is stepped the few instructions until it either leaves (a pass-through
// call) or is inside a call made by a fake; those are let run to a breakpoint on the fake's ret,
// whose effect we then perform ourselves. False when a thread could not be moved out.
bool drainThreads(StoppedProcess& world, const Target& target, TargetMemoryWriter& writer,
                  const AddressRange& blobRange, OperationReport& report) {
  constexpr int kMaxPrologueSteps = 64;
  // A call through a fake finishes in microseconds once the thread runs, but on a saturated
  // machine a resumed thread may wait long for a CPU (50 ms proved too short under a load of
  // 200). A thread still running after this was not in a fake's call, or is blocked in it (the
  // code then stays).
  constexpr uint64_t kRunTimeoutNs = 1000 * 1000 * 1000;
  const arch::PayloadLayout& payload = arch::payloadLayout();
  const uint64_t blob = target.address(target.blobOffset);
  bool drained = true;
  std::vector<StoppedThread*> running;
  for (StoppedThread& thread : world.threads()) {
    for (int step = 0;; ++step) {
      uint64_t ip = 0;
      if (!arch::readInstructionPointer(thread.tid, ip)) break;
      const Flight flight = classify(target, blobRange, thread.tid, ip);
      if (flight == Flight::kClear) break;
      if (step == 0) ++report.movedThreads;
      if (thread.pendingSignal != 0) {
        // Resuming it would swallow its signal: leave it, and the code, where they are.
        drained = false;
        break;
      }
      if (flight == Flight::kAtExit) {
        drained = arch::emulateReturn(target.pid, thread.tid) && drained;
        break;
      }
      if (flight == Flight::kCalledFromFake) {
        running.push_back(&thread);
        break;
      }
      const AddressRange here{ip, ip + 1};
      const StepOutcome outcome = world.stepOutOf(thread, here, 1);
      if (outcome == StepOutcome::kGone) break;
      if (outcome != StepOutcome::kOutside || step >= kMaxPrologueSteps) {
        drained = false;
        break;
      }
    }
  }
  if (running.empty()) return drained;

  const uint8_t breakpoint = 0xcc;
  const uint8_t ret = 0xc3;
  for (uint32_t exit : payload.exitOffset) {
    if (!writer.write(blob + exit, &breakpoint, 1)) return false;
  }
  const auto outcomes = world.runUntilTrap(running, kRunTimeoutNs);
  for (size_t i = 0; i < running.size(); ++i) {
    if (outcomes[i] == StoppedProcess::RunOutcome::kGone) continue;
    uint64_t ip = 0;
    bool atBreakpoint = false;
    if (arch::readInstructionPointer(running[i]->tid, ip) &&
        outcomes[i] == StoppedProcess::RunOutcome::kTrapped) {
      for (uint32_t exit : payload.exitOffset) atBreakpoint |= ip == blob + exit + 1;
    }
    if (!atBreakpoint && outcomes[i] == StoppedProcess::RunOutcome::kTimedOut &&
        !target.vdso.contains(ip) && running[i]->pendingSignal == 0) {
      continue;  // it was never inside a fake's call, and now it is outside the vDSO
    }
    if (!atBreakpoint || !arch::emulateReturn(target.pid, running[i]->tid)) {
      drained = false;
    }
  }
  if (!drained) {
    // Someone is still inside: give the code its ret instructions back before anyone runs it.
    for (uint32_t exit : payload.exitOffset) writer.write(blob + exit, &ret, 1);
  }
  return drained;
}
#else
bool drainThreads(StoppedProcess&, const Target&, TargetMemoryWriter&, const AddressRange&,
                  OperationReport&) {
  return false;
}
#endif

// Undoes an installed skew with every thread stopped: entries first (no new call can enter the
// hook), then threads inside the vDSO are stepped out (one may be in the original code with a
// return address into the fake on its stack), then the blob is zeroed.
Status removeLocked(StoppedProcess& world, Target& target, TargetMemoryWriter& writer,
                    OperationReport& report, bool& codeRetained) {
  for (const PatchedEntry& entry : target.header.entries) {
    if (entry.patchOffset == 0 || entry.patchOffset + 5u > target.blobOffset) continue;
    uint8_t* patch = target.bytes.data() + entry.patchOffset;
    if (std::memcmp(patch, entry.original, 5) == 0) continue;
    // The same aligned window the install flipped, with the jump's 5 bytes put back.
    std::memcpy(patch, entry.original, 5);
    const uint64_t start = patchRegionStart(entry.patchOffset);
    if (!writer.write(target.address(start), target.bytes.data() + start,
                      patchRegionLength(entry.patchOffset))) {
      return writeFailure("restoring a vDSO entry");
    }
  }
  codeRetained = false;
  const AddressRange blobRange{target.address(target.blobOffset),
                               target.address(target.blobOffset + target.header.blobSize)};
  if (!blobCodeIsOurs(target)) {
    // Another build's code: we do not know its shape, so step every thread out of the vDSO.
    for (StoppedThread& thread : world.threads()) {
      uint64_t ip = 0;
      if (!arch::readInstructionPointer(thread.tid, ip) || !target.vdso.contains(ip)) continue;
      StepOutcome outcome = world.stepOutOf(thread, target.vdso, kMaxSteps);
      if (outcome == StepOutcome::kOutside) ++report.movedThreads;
      if (outcome != StepOutcome::kOutside && outcome != StepOutcome::kGone) codeRetained = true;
    }
  } else {
    codeRetained = !drainThreads(world, target, writer, blobRange, report);
  }
  const size_t blobSize = target.header.blobSize;
  if (!codeRetained) {
    std::vector<uint8_t> zeros(blobSize, 0);
    if (!writer.write(target.address(target.blobOffset), zeros.data(), zeros.size())) {
      return writeFailure("clearing timeskew's code");
    }
    std::memset(target.bytes.data() + target.blobOffset, 0, blobSize);
    target.hasBlob = false;
    return Status::success();
  }
  // A thread is still inside the fake: keep the code, make it a pass-through, mark the header.
  const uint32_t noClocks = 0;
  uint8_t* blob = target.bytes.data() + target.blobOffset;
  std::memcpy(blob + TS_QUICK_MASK_OFFSET, &noClocks, sizeof noClocks);
  std::memcpy(blob + TS_SLOTS_OFFSET + TS_SLOT_MASK, &noClocks, sizeof noClocks);
  std::memcpy(blob + TS_SLOTS_OFFSET + TS_SLOT_SIZE + TS_SLOT_MASK, &noClocks, sizeof noClocks);
  target.header.flags |= kFlagCodeRetained;
  target.header.quickMask = noClocks;
  std::memcpy(blob, &target.header, sizeof target.header);
  if (!writer.write(target.address(target.blobOffset), blob, blobSize)) {
    return writeFailure("disabling timeskew's code");
  }
  return Status::success();
}

#if defined(__x86_64__)
// Moves (or steps) every thread out of the bytes the entry jumps will overwrite.
Status clearPatchWindows(StoppedProcess& world, const Target& target, const arch::HookPlan& plan,
                         OperationReport& report) {
  for (StoppedThread& thread : world.threads()) {
    uint64_t ip = 0;
    if (!arch::readInstructionPointer(thread.tid, ip)) continue;
    for (const arch::FunctionPlan& function : plan.functions) {
      const uint64_t windowStart = target.address(function.patchOffset());
      if (ip <= windowStart || ip >= windowStart + 5) continue;
      bool moved = false;
      if (function.mode == kTrampoline) {
        for (int i = 0; i < function.boundaryCount; ++i) {
          if (windowStart + function.originalBoundary[i] != ip) continue;
          const uint64_t trampoline =
              target.address(plan.blobOffset) + arch::payloadLayout().trampolineOffset[&function - plan.functions];
          moved = arch::writeInstructionPointer(thread.tid, trampoline + function.trampolineBoundary[i]);
        }
      }
      if (!moved) {
        AddressRange window{windowStart + 1, windowStart + 5};
        moved = world.stepOutOf(thread, window, kMaxSteps) == StepOutcome::kOutside;
      }
      if (!moved) {
        return failure("EBUSY", EBUSY, nullptr, "try again: this is a transient state",
                       "thread %d is inside %s's first bytes and could not be moved", thread.tid,
                       function.symbol);
      }
      ++report.movedThreads;
      break;
    }
  }
  return Status::success();
}
#endif

}  // namespace

InstallResult installSkew(const InstallRequest& request) {
  InstallResult result;
#if !defined(__x86_64__)
  result.status = notSupported();
  return result;
#else
  const pid_t pid = request.pid;
  AddressRange vdso;
  result.status = checkTarget(pid, vdso);
  if (!result.status.ok) return result;

  StoppedProcess world;
  result.status = world.stop(pid);
  if (!result.status.ok) return result;

  // Read after stopping: nobody can change the image between our look and our writes.
  Target target;
  result.status = readTarget(pid, vdso, target);
  if (!result.status.ok) return result;
  TargetMemoryWriter writer;
  if (!writer.open(pid)) {
    result.status = systemFailure(errno, "open", "/proc/PID/mem");
    return result;
  }
  if (target.hasBlob) {
    const bool retained = target.header.flags & kFlagCodeRetained;
    if (!request.replace && !retained) {
      std::string hint = "pass replace: true to change it, or call restoreClock(" +
                         std::to_string(pid) + ") first";
      result.status = failure("EBUSY", EBUSY, nullptr, hint.c_str(),
                              "process %d is already skewed (installed by timeskew %.8s, pid %d)",
                              pid, target.header.version, target.header.installerPid);
      return result;
    }
    bool codeRetained = false;
    OperationReport ignored;
    result.status = removeLocked(world, target, writer, ignored, codeRetained);
    if (!result.status.ok) return result;
    if (codeRetained) {
      result.status = failure("EBUSY", EBUSY, nullptr, "try again: a thread was inside the old hook",
                              "the previous skew could not be removed yet");
      return result;
    }
  }

  arch::HookPlan plan = arch::planHooks(target.image, request.forceSyscall);
  if (!plan.ok) {
    result.status = failure("ENOTSUP", 0, nullptr,
                            "please report this kernel's vDSO (see the README)",
                            "cannot hook this vDSO: %s", plan.error.c_str());
    return result;
  }
  for (const arch::FunctionPlan& function : plan.functions) {
    const uint8_t first = target.bytes[function.patchOffset()];
    if (first == 0xe9 || first == 0xcc) {
      result.status = failure("EBUSY", EBUSY, nullptr,
                              "another tool (Chaos Mesh, a debugger breakpoint) patched the vDSO",
                              "%s in process %d is already hooked by something else",
                              function.symbol, pid);
      return result;
    }
  }

  // Crash-safe order: code and data first (unreachable until an entry points at them), threads
  // out of the way, then each entry flipped with one write.
  std::vector<uint8_t> blob = arch::buildBlob(plan, request.table, request.installerPid);
  if (!writer.write(target.address(plan.blobOffset), blob.data(), blob.size())) {
    result.status = writeFailure("writing timeskew's code");
    return result;
  }
  result.status = clearPatchWindows(world, target, plan, result.report);
  if (!result.status.ok) {
    std::vector<uint8_t> zeros(blob.size(), 0);
    writer.write(target.address(plan.blobOffset), zeros.data(), zeros.size());
    return result;
  }
  for (int i = 0; i < kHookCount; ++i) {
    const arch::FunctionPlan& function = plan.functions[i];
    if (!writer.write(target.address(function.regionOffset), function.patched,
                      function.regionLength)) {
      result.status = writeFailure("redirecting a vDSO entry");
      return result;  // the next restoreClock finds the header and undoes what was flipped
    }
    result.modes[i] = function.mode;
  }
  result.vdsoStart = target.vdso.start;
  result.blobOffset = static_cast<uint32_t>(plan.blobOffset);
  fillReport(world, result.report);
  return result;
#endif
}

RestoreResult restoreSkew(pid_t pid) {
  RestoreResult result;
  AddressRange vdso;
  result.status = checkTarget(pid, vdso);
  if (!result.status.ok) return result;
  StoppedProcess world;
  result.status = world.stop(pid);
  if (!result.status.ok) return result;
  Target target;
  result.status = readTarget(pid, vdso, target);
  if (!result.status.ok || !target.hasBlob) return result;
  TargetMemoryWriter writer;
  if (!writer.open(pid)) {
    result.status = systemFailure(errno, "open", "/proc/PID/mem");
    return result;
  }
  const bool wasActive = !(target.header.flags & kFlagCodeRetained);
  result.status = removeLocked(world, target, writer, result.report, result.codeRetained);
  if (!result.status.ok) return result;
  result.restored = wasActive;
  fillReport(world, result.report);
  return result;
}

UpdateResult updateSkew(pid_t pid, const ClockTable& table) {
  UpdateResult result;
  Target target;
  result.status = loadTarget(pid, target);
  if (!result.status.ok) return result;
  if (!target.hasBlob || (target.header.flags & kFlagCodeRetained)) {
    result.status = failure("ESRCH", 0, nullptr,
                            "it was restored (maybe by another process); skew it again",
                            "process %d is not skewed any more", pid);
    return result;
  }
  TargetMemoryWriter writer;
  if (!writer.open(pid)) {
    result.status = systemFailure(errno, "open", "/proc/PID/mem");
    return result;
  }
  const uint8_t* blob = target.bytes.data() + target.blobOffset;
  uint64_t control;
  uint32_t quickMask;
  std::memcpy(&control, blob + TS_CONTROL_OFFSET, sizeof control);
  std::memcpy(&quickMask, blob + TS_QUICK_MASK_OFFSET, sizeof quickMask);
  const uint64_t inactive = (control & 1) ^ 1;
  const uint64_t nextControl = (((control >> 1) + 1) << 1) | inactive;
  ClockSlot current;
  std::memcpy(&current, blob + TS_SLOTS_OFFSET + (control & 1) * TS_SLOT_SIZE, sizeof current);
  const ClockSlot slot = toSlot(table, &current);
  const uint32_t unionMask = quickMask | table.mask;
  const uint64_t base = target.address(target.blobOffset);
  // Each step leaves a consistent state if we die right after it (see blob_layout.h).
  if (!writer.write(base + TS_QUICK_MASK_OFFSET, &unionMask, sizeof unionMask) ||
      !writer.write(base + TS_SLOTS_OFFSET + inactive * TS_SLOT_SIZE, &slot, sizeof slot) ||
      !writer.write(base + TS_CONTROL_OFFSET, &nextControl, sizeof nextControl) ||
      !writer.write(base + TS_QUICK_MASK_OFFSET, &table.mask, sizeof table.mask)) {
    result.status = writeFailure("updating the offsets");
  }
  return result;
}

InspectResult inspectSkew(pid_t pid) {
  InspectResult result;
  Target target;
  result.status = loadTarget(pid, target);
  if (!result.status.ok || !target.hasBlob) return result;
  result.present = true;
  result.header = target.header;
  const uint8_t* blob = target.bytes.data() + target.blobOffset;
  uint64_t control;
  std::memcpy(&control, blob + TS_CONTROL_OFFSET, sizeof control);
  ClockSlot slot;
  std::memcpy(&slot, blob + TS_SLOTS_OFFSET + (control & 1) * TS_SLOT_SIZE, sizeof slot);
  result.table = describeSlot(slot);
  return result;
}

}  // namespace timeskew
