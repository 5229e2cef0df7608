#if defined(__x86_64__)
#include "x86_64/blob_builder.h"

#include <cstring>

#include "version.h"
#include "x86_64/payload.h"

namespace timeskew::x86_64 {

std::vector<uint8_t> buildBlob(const HookPlan& plan, const ClockTable& table, pid_t installer) {
  const PayloadLayout& payload = payloadLayout();
  std::vector<uint8_t> blob(payload.bytes, payload.bytes + payload.size);

  BlobHeader header{};
  std::memcpy(header.magic, kBlobMagic, sizeof header.magic);
  header.layout = kLayoutVersion;
  header.blobSize = static_cast<uint32_t>(payload.size);
  std::strncpy(header.version, TIMESKEW_VERSION, sizeof header.version);
  header.installerPid = installer;
  for (int i = 0; i < kHookCount; ++i) {
    const FunctionPlan& function = plan.functions[i];
    PatchedEntry& entry = header.entries[i];
    entry.patchOffset = static_cast<uint16_t>(function.patchOffset());
    entry.mode = function.mode;
    std::memcpy(entry.original,
                function.original + (function.patchOffset() - function.regionOffset),
                sizeof entry.original);
    std::memcpy(blob.data() + payload.trampolineOffset[i], function.trampoline,
                function.trampolineLength);
    if (function.inlined && function.inlineLength == payload.inlineSize[i]) {
      std::memcpy(blob.data() + payload.inlineOffset[i], function.inlineCode, function.inlineLength);
    }
  }
  header.quickMask = table.mask;
  std::memcpy(blob.data(), &header, sizeof header);

  const ClockSlot slot = toSlot(table, nullptr);
  const uint64_t control = 0;  // generation 0, slot 0
  std::memcpy(blob.data() + TS_CONTROL_OFFSET, &control, sizeof control);
  std::memcpy(blob.data() + TS_SLOTS_OFFSET, &slot, sizeof slot);
  std::memcpy(blob.data() + TS_SLOTS_OFFSET + TS_SLOT_SIZE, &slot, sizeof slot);
  return blob;
}

}  // namespace timeskew::x86_64
#endif
