#include "injector.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>

#include <cstring>
#include <string>
#include <vector>

#include "arch.h"
#include "elf_image.h"
#include "frame_table.h"
#include "image_cache.h"
#include "proc.h"
#include "publish.h"
#include "stop_world.h"
#include "target_memory.h"

namespace timeskew {

namespace {

// A thread single-stepped out of another build's code never needs more than a few hundred
// instructions; the cap only guards against a thread that loops inside the vDSO.
constexpr int kMaxSteps = 100000;
// How long install and restore let threads that are inside our code run on before giving up.
// A call through a fake takes nanoseconds once its thread runs; on a saturated machine a
// resumed thread may wait long for a CPU.
constexpr uint64_t kDrainBudgetNs = 2000ull * 1000 * 1000;
// More for each thread of the target: on a saturated machine the scheduler serves every runnable
// thread in turn before one of those inside gets the CPU again (with 1,000 threads spinning on
// 2 cores, in a session of their own, that took more than 2 s).
constexpr uint64_t kDrainBudgetPerThreadNs = 3ull * 1000 * 1000;

uint64_t drainDeadline(uint64_t startNs, size_t threads) {
  return startNs + kDrainBudgetNs + kDrainBudgetPerThreadNs * threads;
}
// CPU time a thread must have had since we let it go: far more than any call through a fake.
constexpr uint64_t kProgressNs = 20 * 1000;

struct Target {
  pid_t pid = 0;
  pid_t memoryPid = 0;  // the process, or a live thread of it when its leader exited
  AddressRange vdso;
  std::vector<uint8_t> bytes;
  VdsoImage image;
  size_t blobOffset = 0;
  bool hasBlob = false;
  BlobHeader header{};

  uint64_t address(uint64_t offset) const { return vdso.start + offset; }
  AddressRange blobRange() const {
    return {address(blobOffset), address(blobOffset + (hasBlob ? header.blobSize : 0))};
  }
};

Status notSupported() {
  return failure("ENOTSUP", 0, nullptr,
                 "timeskew supports x86_64 Linux; arm64 is planned",
                 "this architecture (%s) is not supported", arch::kName);
}

bool isExiting(pid_t pid) {
  ProcessInfo now;
  return !readProcessInfo(pid, now) || now.state == 'Z' || now.state == 'X' ||
         (now.flags & kExitingFlag);
}

Status exited(pid_t pid) {
  return failure("ESRCH", ESRCH, nullptr, "the process exited", "process %d exited", pid);
}

// Checks that can be made without stopping anything, so that bad targets are refused untouched.
Status checkTarget(pid_t pid, AddressRange& vdso, pid_t& memoryPid) {
  ProcessInfo info;
  if (!readProcessInfo(pid, info)) return systemFailure(errno, "open", "/proc/PID/stat");
  memoryPid = pid;
  if (info.state == 'Z' || info.state == 'X') {
    // The leader may have exited alone (pthread_exit in main): the program still runs.
    memoryPid = findLiveThread(pid);
    if (memoryPid == 0) {
      return failure("ESRCH", ESRCH, nullptr,
                     "the process has exited and waits for its parent to reap it",
                     "process %d is a zombie", pid);
    }
  }
  if (info.flags & kKernelThreadFlag) {
    return failure("ENOTSUP", 0, nullptr, "kernel threads have no user-space clock to skew",
                   "process %d is a kernel thread (no vDSO)", pid);
  }
  int error = 0;
  if (!findVdsoMapping(memoryPid, vdso, error)) {
    // A process on its way out has no mappings left before it becomes a zombie.
    if (isExiting(pid)) return exited(pid);
    if (error != 0) return systemFailure(error, "open", "/proc/PID/maps");
    return failure("ENOTSUP", 0, nullptr,
                   "the process has no vDSO (kernel thread, or booted with vdso=0)",
                   "process %d has no [vdso] mapping", pid);
  }
  return Status::success();
}

Status readTarget(pid_t pid, pid_t memoryPid, const AddressRange& vdso, Target& target) {
  target.pid = pid;
  target.memoryPid = memoryPid;
  target.vdso = vdso;
  target.bytes.resize(vdso.end - vdso.start);
  if (!readTargetMemory(memoryPid, vdso.start, target.bytes.data(), target.bytes.size())) {
    const int error = errno;
    if (isExiting(pid)) return exited(pid);
    return systemFailure(error, "process_vm_readv", "reading the vDSO");
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
  target.hasBlob = false;
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
  pid_t memoryPid = 0;
  Status status = checkTarget(pid, vdso, memoryPid);
  if (!status.ok) return status;
  return readTarget(pid, memoryPid, vdso, target);
}

Status writeFailure(const char* what) { return systemFailure(errno, "pwrite", what); }

void addToReport(StoppedProcess& world, OperationReport& report) {
  world.release();
  report.threads = static_cast<int>(world.threads().size());
  report.pauseNs += world.releasedNs() - world.firstStopNs();
  report.maxThreadPauseNs = std::max(report.maxThreadPauseNs, world.maxThreadPauseNs());
}

bool entryIsPatched(const Target& target, const PatchedEntry& entry) {
  return entry.patchOffset != 0 && entry.patchOffset + 5u <= target.blobOffset &&
         std::memcmp(target.bytes.data() + entry.patchOffset, entry.original, 5) != 0;
}

bool anyEntryPatched(const Target& target) {
  for (const PatchedEntry& entry : target.header.entries) {
    if (entryIsPatched(target, entry)) return true;
  }
  return false;
}

// The image as it was before any timeskew patch: entries' original bytes put back, blob area
// zero. The key under which plans and unwind tables are cached.
bool pristineCopy(const Target& target, std::vector<uint8_t>& pristine, VdsoImage& image) {
  pristine = target.bytes;
  if (target.hasBlob) {
    for (const PatchedEntry& entry : target.header.entries) {
      if (entry.patchOffset != 0 && entry.patchOffset + 5u <= target.blobOffset) {
        std::memcpy(pristine.data() + entry.patchOffset, entry.original, 5);
      }
    }
    std::memset(pristine.data() + target.blobOffset, 0, target.header.blobSize);
  }
  std::string error;
  bool wrongClass = false;
  return image.parse(pristine.data(), pristine.size(), error, wrongClass);
}

// Plans and unwind tables are made before the target is stopped (they are cached by image), so
// that inside the stop they cost a lookup. Failures are found again, and reported, once stopped.
void prepareOutsideStop(pid_t pid, pid_t memoryPid, const AddressRange& vdso, bool forInstall,
                        bool forceSyscall) {
  Target early;
  if (!readTarget(pid, memoryPid, vdso, early).ok) return;
  std::vector<uint8_t> pristine;
  VdsoImage image;
  if (!pristineCopy(early, pristine, image)) return;
  if (early.hasBlob) frameTableFor(image);
#if defined(__x86_64__)
  if (forInstall) hookPlanFor(image, forceSyscall);
#else
  (void)forInstall;
  (void)forceSyscall;
#endif
}

// Threads that ran our code when they were stopped, and how much CPU each had had: they are let
// run until each has had more, which takes any of them out of a call through a fake.
struct Waiter {
  pid_t tid = 0;
  uint64_t runtimeNs = 0;
  bool measured = false;
};

std::vector<Waiter> noteWaiters(pid_t pid, const std::vector<pid_t>& tids) {
  std::vector<Waiter> waiters;
  for (pid_t tid : tids) {
    Waiter waiter;
    waiter.tid = tid;
    waiter.measured = readThreadRuntimeNs(pid, tid, waiter.runtimeNs);
    waiters.push_back(waiter);
  }
  return waiters;
}

// False when some thread cannot make progress: the process is stopped (SIGSTOP), so waiting is
// pointless until someone resumes it.
bool awaitProgress(pid_t pid, std::vector<Waiter> waiters, uint64_t deadlineNs, int attempt) {
  for (;;) {
    std::vector<Waiter> still;
    bool unmeasured = false;
    for (const Waiter& waiter : waiters) {
      const char state = readThreadState(pid, waiter.tid);
      if (state == 'T' || state == 't') return false;
      uint64_t now = 0;
      if (!waiter.measured) {
        unmeasured = true;
        continue;
      }
      if (!readThreadRuntimeNs(pid, waiter.tid, now)) continue;  // gone
      if (now - waiter.runtimeNs < kProgressNs) still.push_back(waiter);
    }
    if (unmeasured) {
      // No schedstat in this kernel: give them time instead, more at each attempt.
      struct timespec pause = {0, std::min(200L, 1L << attempt) * 1000 * 1000};
      ::nanosleep(&pause, nullptr);
      return true;
    }
    if (still.empty() || monotonicNowNs() > deadlineNs) return true;
    waiters.swap(still);
    struct timespec pause = {0, 200 * 1000};
    ::nanosleep(&pause, nullptr);
  }
}

// Releases the process until the threads in `waitFor` have had the CPU (or the deadline). False
// when they cannot run (the process is stopped).
bool letRun(StoppedProcess& world, const std::vector<pid_t>& waitFor, uint64_t deadlineNs,
            int attempt, OperationReport& report) {
  const std::vector<Waiter> waiters = noteWaiters(world.pid(), waitFor);
  addToReport(world, report);
  return awaitProgress(world.pid(), waiters, deadlineNs, attempt);
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

// Every thread whose execution depends on the blob: running it, called from it, or interrupted
// by a signal in either place.
std::vector<pid_t> threadsInFlight(StoppedProcess& world, const Target& target) {
  const std::shared_ptr<const FrameTable> frames = frameTableFor(target.image);
  arch::FlightView view;
  view.memoryPid = target.memoryPid;
  view.vdso = target.vdso;
  view.blob = target.blobRange();
  view.frames = frames.get();
  std::vector<pid_t> inFlight;
  std::vector<arch::CodePosition> positions;
  for (const StoppedThread& thread : world.threads()) {
    if (!arch::collectPositions(target.memoryPid, thread.tid, positions)) continue;
    if (arch::isInFlight(view, positions)) inFlight.push_back(thread.tid);
  }
  return inFlight;
}
#else
bool blobCodeIsOurs(const Target&) { return false; }
std::vector<pid_t> threadsInFlight(StoppedProcess& world, const Target&) {
  std::vector<pid_t> all;
  for (const StoppedThread& thread : world.threads()) all.push_back(thread.tid);
  return all;
}
#endif

// Puts the original entry bytes back: from now on no call can enter the hook.
Status restoreEntries(Target& target, TargetMemoryWriter& writer) {
  for (const PatchedEntry& entry : target.header.entries) {
    if (!entryIsPatched(target, entry)) continue;
    uint8_t* patch = target.bytes.data() + entry.patchOffset;
    // The same aligned window the install flipped, with the jump's 5 bytes put back.
    std::memcpy(patch, entry.original, 5);
    const uint64_t start = patchRegionStart(entry.patchOffset);
    if (!writer.write(target.address(start), target.bytes.data() + start,
                      patchRegionLength(entry.patchOffset))) {
      return writeFailure("restoring a vDSO entry");
    }
  }
  return Status::success();
}

Status writeHeaderFlags(Target& target, TargetMemoryWriter& writer, uint32_t flags) {
  target.header.flags = flags;
  std::memcpy(target.bytes.data() + target.blobOffset, &target.header, sizeof target.header);
  // Only the word that holds the flags: the quick mask next to it belongs to the fakes.
  const size_t at = offsetof(BlobHeader, flags);
  if (!writer.write(target.address(target.blobOffset + at), &flags, sizeof flags)) {
    return writeFailure("marking timeskew's code inactive");
  }
  return Status::success();
}

// Undoes an installed skew with every thread stopped: entries first (no new call can enter the
// hook); then, when no thread depends on the blob any more, the blob is zeroed. Otherwise the
// blob stays, marked inactive, and `inFlight` lists the threads to let run before trying again.
Status removeLocked(StoppedProcess& world, Target& target, TargetMemoryWriter& writer,
                    OperationReport& report, std::vector<pid_t>& inFlight) {
  Status status = restoreEntries(target, writer);
  if (!status.ok) return status;
  inFlight.clear();
  if (!blobCodeIsOurs(target)) {
    // Another build's code: we do not know its shape, so step every thread out of the vDSO.
    for (StoppedThread& thread : world.threads()) {
      uint64_t ip = 0;
      if (!arch::readInstructionPointer(thread.tid, ip) || !target.vdso.contains(ip)) continue;
      StepOutcome outcome = world.stepOutOf(thread, target.vdso, kMaxSteps);
      if (outcome == StepOutcome::kOutside) ++report.movedThreads;
      if (outcome != StepOutcome::kOutside && outcome != StepOutcome::kGone) {
        inFlight.push_back(thread.tid);
      }
    }
  } else {
    inFlight = threadsInFlight(world, target);
  }
  if (inFlight.empty()) {
    const size_t blobSize = target.header.blobSize;
    std::vector<uint8_t> zeros(blobSize, 0);
    if (!writer.write(target.address(target.blobOffset), zeros.data(), zeros.size())) {
      return writeFailure("clearing timeskew's code");
    }
    std::memset(target.bytes.data() + target.blobOffset, 0, blobSize);
    target.hasBlob = false;
    return Status::success();
  }
  report.movedThreads += static_cast<int>(inFlight.size());
  if (target.header.flags & kFlagCodeRetained) return Status::success();
  // Marked inactive first: killed right after, the blob is inactive code behind original
  // entries, with its last model (the other order would leave an "active" skew of no clock).
  Status marked = writeHeaderFlags(target, writer, target.header.flags | kFlagCodeRetained);
  if (!marked.ok) return marked;
  // The threads still inside finish their calls with the real time: no clock selected. Only
  // masks change (the values stay), so a fake reading the slot meanwhile sees either answer.
  const uint32_t noClocks = 0;
  const uint64_t base = target.address(target.blobOffset);
  if (!writer.write(base + TS_QUICK_MASK_OFFSET, &noClocks, sizeof noClocks) ||
      !writer.write(base + TS_SLOTS_OFFSET + TS_SLOT_MASK, &noClocks, sizeof noClocks) ||
      !writer.write(base + TS_SLOTS_OFFSET + TS_SLOT_SIZE + TS_SLOT_MASK, &noClocks,
                    sizeof noClocks)) {
    return writeFailure("disabling timeskew's code");
  }
  uint8_t* blob = target.bytes.data() + target.blobOffset;
  std::memcpy(blob + TS_QUICK_MASK_OFFSET, &noClocks, sizeof noClocks);
  std::memcpy(blob + TS_SLOTS_OFFSET + TS_SLOT_MASK, &noClocks, sizeof noClocks);
  std::memcpy(blob + TS_SLOTS_OFFSET + TS_SLOT_SIZE + TS_SLOT_MASK, &noClocks, sizeof noClocks);
  target.header.quickMask = noClocks;
  return Status::success();
}

#if defined(__x86_64__)
// A thread stopped strictly inside the bytes an entry jump overwrites would resume in the middle
// of the jump. One stopped on an instruction that the trampoline also holds can be moved there
// (`moves`); `stuck` lists the others (and threads whose signal handler will return there): they
// are let run before trying again. Changes nothing: the moves are made once the blob is written.
struct WindowMove {
  pid_t tid;
  uint64_t destination;
};

bool findThreadsInWindows(StoppedProcess& world, const Target& target, const arch::HookPlan& plan,
                          std::vector<WindowMove>& moves, std::vector<pid_t>& stuck) {
  moves.clear();
  stuck.clear();
  std::vector<arch::CodePosition> positions;
  for (StoppedThread& thread : world.threads()) {
    if (!arch::collectPositions(target.memoryPid, thread.tid, positions)) continue;
    for (const arch::CodePosition& at : positions) {
      for (int f = 0; f < kHookCount; ++f) {
        const arch::FunctionPlan& function = plan.functions[f];
        const uint64_t windowStart = target.address(function.patchOffset());
        if (at.ip <= windowStart || at.ip >= windowStart + 5) continue;
        uint64_t destination = 0;
        if (!at.fromSignalFrame && function.mode == kTrampoline) {
          for (int i = 0; i < function.boundaryCount; ++i) {
            if (windowStart + function.originalBoundary[i] != at.ip) continue;
            destination = target.address(plan.blobOffset) +
                          arch::payloadLayout().trampolineOffset[f] + function.trampolineBoundary[i];
          }
        }
        if (destination == 0) {
          stuck.push_back(thread.tid);
        } else {
          moves.push_back({thread.tid, destination});
        }
      }
    }
  }
  return stuck.empty();
}

void moveOutOfWindows(const std::vector<WindowMove>& moves, OperationReport& report) {
  for (const WindowMove& move : moves) {
    // A failure means the thread is gone (killed while stopped): nothing to move.
    if (arch::writeInstructionPointer(move.tid, move.destination)) ++report.movedThreads;
  }
}

// The plan for the image as it was before any timeskew patch. Null when it cannot be parsed.
std::shared_ptr<const arch::HookPlan> planPristine(const Target& target, bool forceSyscall,
                                                   std::vector<uint8_t>& pristine) {
  VdsoImage image;
  if (!pristineCopy(target, pristine, image)) return nullptr;
  return hookPlanFor(image, forceSyscall);
}

// The blob in the target has exactly the code and entries `fresh` would have: a new skew can be
// published into it like an update, without removing anything.
bool sameCodeAndEntries(const Target& target, const std::vector<uint8_t>& fresh) {
  if (target.header.blobSize != fresh.size()) return false;
  BlobHeader freshHeader;
  std::memcpy(&freshHeader, fresh.data(), sizeof freshHeader);
  if (std::memcmp(target.header.entries, freshHeader.entries, sizeof freshHeader.entries) != 0) {
    return false;
  }
  // Everything after the clock slots: the per-kernel copy of time() and trampolines included.
  constexpr size_t kCodeStart = TS_SLOTS_OFFSET + 2 * TS_SLOT_SIZE;
  const uint8_t* installed = target.bytes.data() + target.blobOffset;
  return std::memcmp(installed + kCodeStart, fresh.data() + kCodeStart,
                     fresh.size() - kCodeStart) == 0;
}
#endif

// Publishes `table` into the blob already in the target (see publish.h): a thread reading the old
// slot when it was stopped retries on the new one.
Status publishInto(Target& target, TargetMemoryWriter& writer, const ClockTable& table) {
  ClockSlot published;
  return publishTable(writer, target.address(target.blobOffset),
                      target.bytes.data() + target.blobOffset, table, published);
}

}  // namespace

InstallResult installSkew(const InstallRequest& request) {
  InstallResult result;
#if !defined(__x86_64__)
  result.status = notSupported();
  return result;
#else
  const pid_t pid = request.pid;
  AddressRange vdso;
  pid_t memoryPid = 0;
  result.status = checkTarget(pid, vdso, memoryPid);
  if (!result.status.ok) return result;
  prepareOutsideStop(pid, memoryPid, vdso, true, request.forceSyscall);
  const uint64_t started = monotonicNowNs();
  uint64_t deadline = drainDeadline(started, 0);
  // The entry windows and clock masks of the skew being replaced, to put back if it cannot be
  // replaced (making it inactive cleared its masks).
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> replacedEntries;
  constexpr size_t kMaskOffsets[] = {TS_QUICK_MASK_OFFSET, TS_SLOTS_OFFSET + TS_SLOT_MASK,
                                     TS_SLOTS_OFFSET + TS_SLOT_SIZE + TS_SLOT_MASK};
  std::array<uint32_t, 3> replacedMasks{};

  bool stalled = false;
  for (int attempt = 0;; ++attempt) {
    StoppedProcess world;
    result.status = world.stop(pid);
    if (!result.status.ok) return result;
    // Read after stopping: nobody can change the image between our look and our writes.
    Target target;
    result.status = readTarget(pid, memoryPid, vdso, target);
    if (!result.status.ok) return result;
    TargetMemoryWriter writer;
    if (!writer.open(memoryPid)) {
      result.status = systemFailure(errno, "open", "/proc/PID/mem");
      return result;
    }
    std::vector<uint8_t> pristine;
    const std::shared_ptr<const arch::HookPlan> planned =
        planPristine(target, request.forceSyscall, pristine);
    if (!planned || !planned->ok) {
      result.status = failure("ENOTSUP", 0, nullptr,
                              "please report this kernel's vDSO (see the README)",
                              "cannot hook this vDSO: %s",
                              planned ? planned->error.c_str() : "unparsable image");
      return result;
    }
    const arch::HookPlan& plan = *planned;
    for (const arch::FunctionPlan& function : plan.functions) {
      const uint8_t first = pristine[function.patchOffset()];
      if (first == 0xe9 || first == 0xcc) {
        result.status = failure("EBUSY", EBUSY, nullptr,
                                "another tool (Chaos Mesh, a debugger breakpoint) patched the vDSO",
                                "%s in process %d is already hooked by something else",
                                function.symbol, pid);
        return result;
      }
    }
    const std::vector<uint8_t> blob = arch::buildBlob(plan, request.table, request.installerPid);
    const bool entriesPatched = target.hasBlob && anyEntryPatched(target);
    std::vector<pid_t> waitFor;
    std::vector<WindowMove> moves;

    if (target.hasBlob) {
      const bool inactive = target.header.flags & kFlagCodeRetained;
      if (!request.replace && !inactive) {
        std::string hint = "pass replace: true to change it, or call restoreClock(" +
                           std::to_string(pid) + ") first";
        result.status = failure("EBUSY", EBUSY, nullptr, hint.c_str(),
                                "process %d is already skewed (installed by timeskew %.8s, pid %d)",
                                pid, target.header.version, target.header.installerPid);
        return result;
      }
      if (sameCodeAndEntries(target, blob)) {
        // The code a thread may be running stays as it is: only the data changes.
        if (!entriesPatched && !findThreadsInWindows(world, target, plan, moves, waitFor)) {
          goto wait;
        }
        result.status = publishInto(target, writer, request.table);
        if (!result.status.ok) return result;
        BlobHeader header;
        std::memcpy(&header, blob.data(), sizeof header);
        // Everything before the quick mask: installer, version, flags cleared.
        if (!writer.write(target.address(target.blobOffset), &header,
                          offsetof(BlobHeader, quickMask))) {
          result.status = writeFailure("writing timeskew's header");
          return result;
        }
        moveOutOfWindows(moves, result.report);
      } else {
        if (attempt == 0 && !inactive) {
          const uint8_t* state = target.bytes.data() + target.blobOffset;
          for (size_t m = 0; m < replacedMasks.size(); ++m) {
            std::memcpy(&replacedMasks[m], state + kMaskOffsets[m], sizeof replacedMasks[m]);
          }
          for (const PatchedEntry& entry : target.header.entries) {
            if (!entryIsPatched(target, entry)) continue;
            const uint64_t start = patchRegionStart(entry.patchOffset);
            replacedEntries.emplace_back(
                target.address(start),
                std::vector<uint8_t>(target.bytes.begin() + start,
                                     target.bytes.begin() + start + patchRegionLength(entry.patchOffset)));
          }
        }
        OperationReport ignored;
        result.status = removeLocked(world, target, writer, ignored, waitFor);
        if (!result.status.ok) return result;
        if (!waitFor.empty()) goto wait;
        if (!findThreadsInWindows(world, target, plan, moves, waitFor)) goto wait;
        if (!writer.write(target.address(plan.blobOffset), blob.data(), blob.size())) {
          result.status = writeFailure("writing timeskew's code");
          return result;
        }
        moveOutOfWindows(moves, result.report);
      }
    } else {
      if (!findThreadsInWindows(world, target, plan, moves, waitFor)) goto wait;
      // Crash-safe order: code and data first (unreachable until an entry points at them),
      // threads out of the way, then each entry flipped with one write.
      if (!writer.write(target.address(plan.blobOffset), blob.data(), blob.size())) {
        result.status = writeFailure("writing timeskew's code");
        return result;
      }
      moveOutOfWindows(moves, result.report);
    }
    if (!entriesPatched) {
      for (int i = 0; i < kHookCount; ++i) {
        const arch::FunctionPlan& function = plan.functions[i];
        if (!writer.write(target.address(function.regionOffset), function.patched,
                          function.regionLength)) {
          result.status = writeFailure("redirecting a vDSO entry");
          return result;  // the next restoreClock finds the header and undoes what was flipped
        }
      }
    }
    for (int i = 0; i < kHookCount; ++i) result.modes[i] = plan.functions[i].mode;
    result.vdsoStart = target.vdso.start;
    result.blobOffset = static_cast<uint32_t>(plan.blobOffset);
    addToReport(world, result.report);
    return result;

  wait:
    if (attempt == 0) deadline = drainDeadline(started, world.threads().size());
    if (stalled || monotonicNowNs() > deadline) {
      if (!replacedEntries.empty()) {
        // Leave the skew being replaced in force, as the caller found it: marked active first,
        // as an install does (killed in between, it reads as a skew not fully installed).
        const uint64_t state = target.address(target.blobOffset);
        for (size_t m = 0; m < replacedMasks.size(); ++m) {
          writer.write(state + kMaskOffsets[m], &replacedMasks[m], sizeof replacedMasks[m]);
        }
        writeHeaderFlags(target, writer, target.header.flags & ~kFlagCodeRetained);
        for (const auto& region : replacedEntries) {
          writer.write(region.first, region.second.data(), region.second.size());
        }
      }
      result.status = failure("EBUSY", EBUSY, nullptr,
                              "try again: a thread stayed inside the code being replaced "
                              "(a signal handler that blocks?)",
                              "thread %d of process %d could not be moved out of the way",
                              waitFor.front(), pid);
      return result;
    }
    stalled = !letRun(world, waitFor, deadline, attempt, result.report);
  }
#endif
}

RestoreResult restoreSkew(pid_t pid) {
  RestoreResult result;
  AddressRange vdso;
  pid_t memoryPid = 0;
  result.status = checkTarget(pid, vdso, memoryPid);
  if (!result.status.ok) return result;
  prepareOutsideStop(pid, memoryPid, vdso, false, false);
  const uint64_t started = monotonicNowNs();
  uint64_t deadline = drainDeadline(started, 0);
  bool stalled = false;
  for (int attempt = 0;; ++attempt) {
    StoppedProcess world;
    result.status = world.stop(pid);
    if (!result.status.ok) return result;
    Target target;
    result.status = readTarget(pid, memoryPid, vdso, target);
    if (!result.status.ok) return result;
    if (!target.hasBlob) {
      addToReport(world, result.report);
      return result;
    }
    if (attempt == 0) result.restored = !(target.header.flags & kFlagCodeRetained);
    TargetMemoryWriter writer;
    if (!writer.open(memoryPid)) {
      result.status = systemFailure(errno, "open", "/proc/PID/mem");
      return result;
    }
    std::vector<pid_t> waitFor;
    result.status = removeLocked(world, target, writer, result.report, waitFor);
    if (!result.status.ok) return result;
    if (attempt == 0) deadline = drainDeadline(started, world.threads().size());
    if (waitFor.empty() || stalled || monotonicNowNs() > deadline) {
      // Past the deadline the code stays, inactive: whoever restores or skews next removes it.
      result.codeRetained = !waitFor.empty();
      addToReport(world, result.report);
      return result;
    }
    stalled = !letRun(world, waitFor, deadline, attempt, result.report);
  }
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
  if (!writer.open(target.memoryPid)) {
    result.status = systemFailure(errno, "open", "/proc/PID/mem");
    return result;
  }
  // Each step leaves a consistent state if we die right after it (see blob_layout.h).
  result.status = publishInto(target, writer, table);
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
