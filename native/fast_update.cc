#include "fast_update.h"

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "elf_image.h"
#include "proc.h"
#include "publish.h"
#include "target_memory.h"

namespace timeskew {

namespace {

// Everything an update reads, in the target's order: one read covers it.
struct StateWindow {
  BlobHeader header;
  uint64_t control;
  ClockSlot slots[2];
};
static_assert(offsetof(StateWindow, control) == TS_CONTROL_OFFSET, "control word offset");
static_assert(offsetof(StateWindow, slots) == TS_SLOTS_OFFSET, "slots offset");
static_assert(sizeof(StateWindow) == TS_SLOTS_OFFSET + 2 * TS_SLOT_SIZE, "the state ends where code starts");

Status notSkewed(pid_t pid) {
  return failure("ESRCH", 0, nullptr, "it was restored (maybe by another process); skew it again",
                 "process %d is not skewed any more", pid);
}

Status otherLayout(pid_t pid, uint32_t layout) {
  return failure("EBUSY", EBUSY, nullptr, "restore it with the timeskew version that installed it",
                 "process %d carries a skew of another timeskew layout (%u)", pid, layout);
}

// A blob of ours, live (not left behind as a pass-through by a restore)?
Status checkHeader(pid_t pid, const BlobHeader& header) {
  if (std::memcmp(header.magic, kBlobMagic, sizeof kBlobMagic) != 0 ||
      (header.flags & kFlagCodeRetained)) {
    return notSkewed(pid);
  }
  if (header.layout != kLayoutVersion || header.blobSize < TS_CODE_OFFSET) {
    return otherLayout(pid, header.layout);
  }
  return Status::success();
}

}  // namespace

Status locateBlob(pid_t pid, BlobLocation& location) {
  AddressRange vdso;
  int error = 0;
  if (!findVdsoMapping(pid, vdso, error)) {
    // A process without [vdso] in its maps is a zombie (empty maps) or exec'ed into one without.
    return error != 0 ? systemFailure(error, "open", "/proc/PID/maps") : notSkewed(pid);
  }
  std::vector<uint8_t> bytes(vdso.end - vdso.start);
  if (!readTargetMemory(pid, vdso.start, bytes.data(), bytes.size())) {
    return systemFailure(errno, "process_vm_readv", "reading the vDSO");
  }
  VdsoImage image;
  std::string parseError;
  bool wrongClass = false;
  if (!image.parse(bytes.data(), bytes.size(), parseError, wrongClass)) return notSkewed(pid);
  // Where installSkew puts the blob (see readTarget in injector.cc).
  const size_t blobOffset = (image.elfEnd() + 15) & ~size_t{15};
  if (blobOffset + sizeof(StateWindow) > bytes.size()) return notSkewed(pid);
  BlobHeader header;
  std::memcpy(&header, bytes.data() + blobOffset, sizeof header);
  Status status = checkHeader(pid, header);
  if (!status.ok) return status;
  if (blobOffset + header.blobSize > bytes.size()) return otherLayout(pid, header.layout);
  location.vdsoStart = vdso.start;
  location.blobOffset = static_cast<uint32_t>(blobOffset);
  location.installerPid = header.installerPid;
  return Status::success();
}

Status updateAt(pid_t pid, const BlobLocation& location, const ClockTable& table,
                ClockSlot& published) {
  const uint64_t base = location.vdsoStart + location.blobOffset;
  StateWindow state;
  if (!readTargetMemory(pid, base, &state, sizeof state)) {
    // Nothing mapped there any more: the process exec'ed (a new vDSO, elsewhere).
    if (errno == EFAULT || errno == EIO) return notSkewed(pid);
    return systemFailure(errno, "process_vm_readv", "reading timeskew's state");
  }
  Status status = checkHeader(pid, state.header);
  if (!status.ok) return status;
  if (state.header.installerPid != location.installerPid) {
    return failure("ESRCH", 0, nullptr,
                   "it was restored and skewed anew by another process; skew it again",
                   "process %d is not skewed by this handle any more (now by pid %d)", pid,
                   state.header.installerPid);
  }

  TargetMemoryWriter writer;
  if (!writer.open(pid)) return systemFailure(errno, "open", "/proc/PID/mem");
  return publishTable(writer, base, reinterpret_cast<const uint8_t*>(&state), table, published);
}

}  // namespace timeskew
