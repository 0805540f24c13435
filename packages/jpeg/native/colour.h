// Colour management as libvips' icc_transform does it for sharp: the embedded profile to the
// output profile through Little CMS, 8-bit RGB in and out, perceptual intent, no black point
// compensation. Free of N-API and of libjpeg.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace facegate_jpeg {

// A Little CMS transform between two profiles; safe to apply from several threads at once.
class ColourTransform;

// The transform from `embedded` to `output`, or null with `whyNot` set where libvips would not
// convert through `embedded` as asked here (a profile Little CMS cannot read, not an RGB profile,
// no perceptual intent as input) or Little CMS cannot build it. Transforms (and refusals) are
// kept for the last few profile pairs seen: building one costs 1-5 ms.
std::shared_ptr<const ColourTransform> TransformBetween(const std::uint8_t* embedded, std::size_t embeddedLength,
                                                        const std::uint8_t* output, std::size_t outputLength,
                                                        const char** whyNot);

// Converts `pixels` (RGB, 3 bytes each) in place.
void ConvertInPlace(const ColourTransform& transform, std::uint8_t* pixels, std::size_t count);

// The linked Little CMS as MMmm (2.14: 2140).
int LittleCmsVersion();

}  // namespace facegate_jpeg
