#include "colour.h"

#include <cstring>
#include <list>
#include <mutex>
#include <string>
#include <vector>

#include <lcms2.h>

namespace facegate_jpeg {

class ColourTransform {
 public:
  explicit ColourTransform(cmsHTRANSFORM handle) : handle_(handle) {}
  ~ColourTransform() { cmsDeleteTransform(handle_); }
  ColourTransform(const ColourTransform&) = delete;
  ColourTransform& operator=(const ColourTransform&) = delete;

  cmsHTRANSFORM handle() const { return handle_; }

 private:
  cmsHTRANSFORM handle_;
};

namespace {

// Closes a profile when the scope ends, however it ends.
struct ProfileCloser {
  void operator()(void* profile) const { cmsCloseProfile(profile); }
};
using Profile = std::unique_ptr<void, ProfileCloser>;

Profile OpenProfile(const std::uint8_t* bytes, std::size_t length) {
  return Profile(cmsOpenProfileFromMem(bytes, static_cast<cmsUInt32Number>(length)));
}

struct Built {
  std::shared_ptr<const ColourTransform> transform;
  const char* whyNot;
};

// The checks libvips makes of an embedded profile before it converts through it (a profile it
// refuses is replaced by its own sRGB, which this does not reproduce), then the transform it asks
// Little CMS for. cmsFLAGS_NOCACHE drops Little CMS's one-pixel cache, which makes the transform
// safe to share between threads; libvips sets it for the same reason.
Built Build(const std::string& embedded, const std::string& output) {
  Profile input = OpenProfile(reinterpret_cast<const std::uint8_t*>(embedded.data()), embedded.size());
  if (!input) return {nullptr, "an embedded ICC profile Little CMS cannot read"};
  if (cmsGetColorSpace(input.get()) != cmsSigRgbData) return {nullptr, "an embedded ICC profile that is not RGB"};
  if (!cmsIsIntentSupported(input.get(), INTENT_PERCEPTUAL, LCMS_USED_AS_INPUT)) {
    return {nullptr, "an embedded ICC profile without a perceptual intent"};
  }
  Profile target = OpenProfile(reinterpret_cast<const std::uint8_t*>(output.data()), output.size());
  if (!target || cmsGetColorSpace(target.get()) != cmsSigRgbData) return {nullptr, "an output profile that is not RGB"};
  cmsHTRANSFORM handle =
      cmsCreateTransform(input.get(), TYPE_RGB_8, target.get(), TYPE_RGB_8, INTENT_PERCEPTUAL, cmsFLAGS_NOCACHE);
  if (handle == nullptr) return {nullptr, "Little CMS cannot convert through the embedded ICC profile"};
  return {std::make_shared<const ColourTransform>(handle), nullptr};
}

struct CachedTransform {
  std::string embedded;
  std::string output;
  Built built;
};

// Photos from one camera or phone carry the same profile: a handful of pairs covers a service's
// traffic, and each entry is a few kilobytes of profile and tables.
constexpr std::size_t kCachedPairs = 16;
// Entries keep their profiles whole (compared byte for byte: a hash could be made to collide, and
// another upload's transform be used). Larger profiles (RGB ones are a few kilobytes, rarely
// hundreds) are left to sharp, which bounds the cache at 32 MB however many are sent.
constexpr std::size_t kLargestProfile = 1 << 20;

// The colour table of ConvertInPlace: 2^16 colours (512 KB), and the images too small to repay it.
constexpr int kTableBits = 16;
constexpr std::size_t kSmallestRemembered = 1 << 16;
// From this many pixels on, a table of 2^18 colours (2 MB): a photo of a megapixel or more holds more colours than
// 2^16 slots keep apart, and each colour pushed out costs a Little CMS conversion again. Measured on the shared
// data's ICC photos of 0.4-4.8 MP (tools/jpeg/colour-bench.sh): 0.56-1.00 of the time with 2^16; 2^19 and 2^20
// slots were slower again.
constexpr int kLargeTableBits = 18;
constexpr std::size_t kSmallestForLargeTable = std::size_t{1} << 18;

std::mutex cacheLock;
std::list<CachedTransform> cache;  // most recently used first

}  // namespace

std::shared_ptr<const ColourTransform> TransformBetween(const std::uint8_t* embedded, std::size_t embeddedLength,
                                                        const std::uint8_t* output, std::size_t outputLength,
                                                        const char** whyNot) {
  if (embeddedLength > kLargestProfile || outputLength > kLargestProfile) {
    *whyNot = "an ICC profile over 1 MB";
    return nullptr;
  }
  std::string embeddedKey(reinterpret_cast<const char*>(embedded), embeddedLength);
  std::string outputKey(reinterpret_cast<const char*>(output), outputLength);
  {
    std::lock_guard<std::mutex> guard(cacheLock);
    for (auto entry = cache.begin(); entry != cache.end(); ++entry) {
      if (entry->embedded == embeddedKey && entry->output == outputKey) {
        cache.splice(cache.begin(), cache, entry);
        *whyNot = entry->built.whyNot;
        return entry->built.transform;
      }
    }
  }
  // Built without the lock, which other threads' conversions need meanwhile; two threads meeting
  // a new profile at once may both build it, and the second entry only pushes out an older one.
  Built built = Build(embeddedKey, outputKey);
  {
    std::lock_guard<std::mutex> guard(cacheLock);
    cache.push_front({std::move(embeddedKey), std::move(outputKey), built});
    if (cache.size() > kCachedPairs) cache.pop_back();
  }
  *whyNot = built.whyNot;
  return built.transform;
}

void ConvertInPlace(const ColourTransform& transform, std::uint8_t* pixels, std::size_t count) {
  // The transform is a function of each pixel's colour alone, and a photo holds few colours (4-5 % as many as
  // pixels in the shared data's, which Little CMS converts at ~10 ns each): a colour converted once is remembered in
  // a direct-mapped table (of 2^16 colours, where 82-92 % of a photo's pixels are found; 2^18 for larger photos) and
  // only the others go through Little CMS, in batches. Small images skip the table, which costs more than it saves.
  constexpr std::size_t kBatch = 4096;
  std::uint8_t missed[kBatch * 3];
  std::uint8_t converted[kBatch * 3];
  std::uint32_t missedAt[kBatch];
  if (count < kSmallestRemembered) {
    for (std::size_t first = 0; first < count; first += kBatch) {
      const std::size_t chunk = count - first < kBatch ? count - first : kBatch;
      std::uint8_t* at = pixels + first * 3;
      std::memcpy(missed, at, chunk * 3);
      cmsDoTransform(transform.handle(), missed, at, static_cast<cmsUInt32Number>(chunk));
    }
    return;
  }
  // A slot holds its colour in the upper half and the converted colour in the lower, so that a lookup reads one cache
  // line; no 24-bit colour has the key of an empty slot.
  constexpr std::uint64_t kEmpty = 0xffffffff00000000ull;
  const int tableBits = count >= kSmallestForLargeTable ? kLargeTableBits : kTableBits;
  std::vector<std::uint64_t> table(std::size_t{1} << tableBits, kEmpty);
  const auto slotOf = [tableBits](std::uint32_t colour) { return (colour * 2654435761u) >> (32 - tableBits); };
  std::size_t misses = 0;
  const auto convertMissed = [&] {
    cmsDoTransform(transform.handle(), missed, converted, static_cast<cmsUInt32Number>(misses));
    for (std::size_t miss = 0; miss < misses; miss++) {
      const std::uint8_t* from = missed + miss * 3;
      const std::uint8_t* to = converted + miss * 3;
      std::memcpy(pixels + static_cast<std::size_t>(missedAt[miss]) * 3, to, 3);
      const std::uint32_t colour = (std::uint32_t{from[0]} << 16) | (std::uint32_t{from[1]} << 8) | from[2];
      table[slotOf(colour)] = (std::uint64_t{colour} << 32) | (std::uint32_t{to[0]} << 16) |
                              (std::uint32_t{to[1]} << 8) | to[2];
    }
    misses = 0;
  };
  for (std::size_t index = 0; index < count; index++) {
    std::uint8_t* pixel = pixels + index * 3;
    const std::uint32_t colour = (std::uint32_t{pixel[0]} << 16) | (std::uint32_t{pixel[1]} << 8) | pixel[2];
    const std::uint64_t entry = table[slotOf(colour)];
    if (static_cast<std::uint32_t>(entry >> 32) == colour) {
      const std::uint32_t value = static_cast<std::uint32_t>(entry);
      pixel[0] = static_cast<std::uint8_t>(value >> 16);
      pixel[1] = static_cast<std::uint8_t>(value >> 8);
      pixel[2] = static_cast<std::uint8_t>(value);
      continue;
    }
    std::memcpy(missed + misses * 3, pixel, 3);
    missedAt[misses] = static_cast<std::uint32_t>(index);
    if (++misses == kBatch) convertMissed();
  }
  if (misses > 0) convertMissed();
}

int LittleCmsVersion() { return cmsGetEncodedCMMversion(); }

}  // namespace facegate_jpeg
