// update() without re-locating the target: the caller keeps where the blob is (learned at install,
// or located once), and each update reads only the header, the control word and the two slots (one
// process_vm_readv) and writes the new slot through /proc/PID/mem. Nothing here stops the target
// or waits on it, so it can run on the JavaScript thread: no thread-pool round trip, and no
// /proc/PID/stat or /proc/PID/maps read, whose cost grows with the target's size.
//
// Kept apart from injector.cc on purpose: install and restore (which stop the target) live there;
// this is the only path that writes without stopping anything.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "blob_layout.h"
#include "status.h"

namespace timeskew {

// Identifies one installed blob: where it sits, and who installed it (the header records the
// installer's pid), so that a blob removed and installed anew by another process is not taken for
// the one the caller installed.
struct BlobLocation {
  uint64_t vdsoStart = 0;
  uint32_t blobOffset = 0;
  pid_t installerPid = 0;
};

// Finds the blob installed in `pid` (reads /proc/PID/maps and the vDSO once). ESRCH when there is
// none any more.
Status locateBlob(pid_t pid, BlobLocation& location);

// Publishes `table` in the blob at `location` (publish.h, as updateSkew does). `published`
// receives the slot made live, so the caller can tell what the clocks read without asking the
// target again. ESRCH when the blob there is not the one located (restored, re-installed by
// someone else, or the process exec'ed or exited).
Status updateAt(pid_t pid, const BlobLocation& location, const ClockTable& table,
                ClockSlot& published);

}  // namespace timeskew
