#include "image_cache.h"

#include <cstring>
#include <mutex>
#include <string>

namespace timeskew {

namespace {

// A handful of images at most (one per kernel a process was started under, in practice one).
constexpr size_t kEntries = 4;

template <typename Value>
class ImageCache {
 public:
  template <typename Make>
  std::shared_ptr<const Value> get(const VdsoImage& image, int variant, Make make) {
    // The key is the ELF part of the image: the padding after it is where patches live.
    const uint8_t* key = image.bytes();
    const size_t length = image.elfEnd();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const Entry& entry : entries_) {
        if (entry.variant == variant && entry.key.size() == length &&
            std::memcmp(entry.key.data(), key, length) == 0) {
          return entry.value;
        }
      }
    }
    std::shared_ptr<const Value> value = make();
    std::lock_guard<std::mutex> lock(mutex_);
    if (entries_.size() == kEntries) entries_.erase(entries_.begin());
    entries_.push_back(Entry{std::vector<uint8_t>(key, key + length), variant, value});
    return value;
  }

 private:
  struct Entry {
    std::vector<uint8_t> key;
    int variant;
    std::shared_ptr<const Value> value;
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

}  // namespace

std::shared_ptr<const FrameTable> frameTableFor(const VdsoImage& image) {
#if defined(__x86_64__)
  static ImageCache<FrameTable> cache;
  return cache.get(image, 0, [&image]() -> std::shared_ptr<const FrameTable> {
    auto table = std::make_shared<FrameTable>();
    std::string error;
    if (!table->parse(image, arch::kDwarfFramePointer, arch::kDwarfReturnAddress, error)) {
      return nullptr;
    }
    return table;
  });
#else
  (void)image;
  return nullptr;
#endif
}

#if defined(__x86_64__)
std::shared_ptr<const arch::HookPlan> hookPlanFor(const VdsoImage& pristine, bool forceSyscall) {
  static ImageCache<arch::HookPlan> cache;
  return cache.get(pristine, forceSyscall ? 1 : 0, [&pristine, forceSyscall]() {
    return std::make_shared<const arch::HookPlan>(arch::planHooks(pristine, forceSyscall));
  });
}
#endif

}  // namespace timeskew
