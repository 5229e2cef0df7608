// The operations on a target: install, update, restore, inspect. Each result is plain data so
// that an operation can run in a forked helper process (see helper_process.h).
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "blob_layout.h"
#include "status.h"

namespace timeskew {

struct OperationReport {
  int threads = 0;
  int movedThreads = 0;
  uint64_t pauseNs = 0;
  uint64_t maxThreadPauseNs = 0;
};

struct InstallRequest {
  pid_t pid = 0;
  ClockTable table;
  bool replace = false;
  bool forceSyscall = false;
  pid_t installerPid = 0;  // recorded in the target; the caller's pid, not a helper's
};

struct InstallResult {
  Status status;
  OperationReport report;
  uint8_t modes[kHookCount] = {};
  // Where the blob went, so that updates need not look for it again (fast_update.h).
  uint64_t vdsoStart = 0;
  uint32_t blobOffset = 0;
};

struct RestoreResult {
  Status status;
  OperationReport report;
  bool restored = false;
  bool codeRetained = false;
};

struct InspectResult {
  Status status;
  bool present = false;
  BlobHeader header{};
  ClockTable table;
};

struct UpdateResult {
  Status status;
};

InstallResult installSkew(const InstallRequest& request);
UpdateResult updateSkew(pid_t pid, const ClockTable& table);
RestoreResult restoreSkew(pid_t pid);
InspectResult inspectSkew(pid_t pid);

}  // namespace timeskew
