/**
 * JPEG decoding through the system's libjpeg-turbo (Debian's libjpeg62-turbo), synchronously on the calling thread.
 * For the JPEGs that make most uploads (three YCbCr components, or grey without a profile, no corruption), EXIF
 * orientation applied, grey repeated into three bands as libvips turns B_W into sRGB and an embedded ICC profile
 * converted to sRGB, it gives byte for byte what sharp 0.35.5 decodes, in a fraction of sharp's
 * time: both run libjpeg-turbo's integer IDCT and fancy upsampling, which are exact, the profile is converted by
 * Little CMS with libvips' settings (Debian's 2.14 gives sharp's 2.19 bytes for 8-bit transforms), and turning a
 * photo upright only moves pixels. It also makes the first and last steps of sharp's reduced decode (shrink-on-load
 * at 1/2, 1/4 or 1/8, whole pixels only, then the orientation), for a caller that resizes in between. Every other JPEG
 * is declined, with the reason, and left to sharp.
 *
 * The addon (packages/jpeg/native) validates its arguments (TypeError / RangeError with
 * `code: 'ERR_JPEG_INVALID_ARGUMENT'`) and turns every libjpeg error and warning into a declined decode; it never
 * aborts the process. Its only shared state is a small cache of Little CMS transforms behind a lock, so worker
 * threads may call it concurrently.
 */
import { createRequire } from 'node:module';

/** A tightly packed RGB image: 3 bytes per pixel, rows of `width * 3` bytes. */
export interface DecodedRgb {
  width: number;
  height: number;
  data: Uint8Array;
}

/** What a JPEG's header, and its EXIF and ICC markers, say. */
export interface JpegHeader {
  width: number;
  height: number;
  components: number;
  colourSpace: 'grey' | 'rgb' | 'ycbcr' | 'cmyk' | 'ycck' | 'unknown';
  progressive: boolean;
  /** EXIF orientation 1–8; 0 without EXIF or without the tag; -1 where the EXIF block is malformed or repeated. */
  orientation: number;
  iccProfile: boolean;
}

/** The addon's answer for a JPEG it does not decode: why, and in what words. */
interface NotDecoded {
  reason: JpegDecline;
  error: string;
}

interface NativeBinding {
  readHeader(bytes: Uint8Array): JpegHeader | NotDecoded;
  decode(
    bytes: Uint8Array,
    maxPixels: number,
    outputProfile: Uint8Array | undefined,
    shrink: number,
    upright: boolean,
  ): (DecodedRgb & { orientation: number }) | NotDecoded;
  orient(data: Uint8Array, width: number, height: number, orientation: number): Uint8Array;
  libjpegTurboVersion: number;
  littleCmsVersion: number;
}

/** Why the addon could not be loaded, or null where it was. */
let loadError: string | null = null;

function loadBinding(): NativeBinding | null {
  try {
    return createRequire(import.meta.url)('../build/Release/jpeg_binding.node') as NativeBinding;
  } catch (error) {
    // Not built (no compiler or no libjpeg headers at install time): callers decode with sharp.
    loadError = error instanceof Error ? error.message : String(error);
    return null;
  }
}

const binding = loadBinding();

/** Why the addon could not be loaded (its loader's message, for health and logs); null where it was. */
export const nativeJpegLoadError: string | null = loadError;

/** false when the addon could not be loaded (then callers use sharp); never throws at import. */
export const nativeJpegAvailable: boolean = binding !== null;

/** The linked libjpeg-turbo as MMMmmmppp (2.1.5: 2001005); 0 without the addon or for another libjpeg. */
export const libjpegTurboVersion: number = binding?.libjpegTurboVersion ?? 0;

/** The linked Little CMS as MMmm (2.14: 2140); 0 without the addon. */
export const littleCmsVersion: number = binding?.littleCmsVersion ?? 0;

/** `error.code` of the TypeError / RangeError the addon throws for an argument it refuses. */
export const JPEG_INVALID_ARGUMENT = 'ERR_JPEG_INVALID_ARGUMENT';

function requireBinding(): NativeBinding {
  if (binding === null) {
    throw new Error('@facegate/jpeg: the native addon is not built (npm run build:native -w @facegate/jpeg)');
  }
  return binding;
}

/** The header of a JPEG, or null where libjpeg cannot read one. Throws when the addon is not available. */
export function readJpegHeader(bytes: Uint8Array): JpegHeader | null {
  const header = requireBinding().readHeader(bytes);
  return 'reason' in header ? null : header;
}

/** Why a JPEG is left to sharp. */
export type JpegDecline =
  /** libjpeg cannot read its header. */
  | 'unreadable'
  /** Neither three YCbCr components nor grey (CMYK, YCCK, RGB without a transform): libvips converts these. */
  | 'colour-space'
  /**
   * An embedded ICC profile not converted here: no `outputProfile` given, chunks that do not make one profile, or a
   * profile libvips would not convert through as asked (unreadable, not RGB, no perceptual intent).
   */
  | 'icc-profile'
  /** An EXIF block that cannot be read (or two of them): what libvips makes of it is not reproduced. */
  | 'orientation'
  /** More pixels than allowed: sharp refuses it, saying so. */
  | 'too-many-pixels'
  /** libjpeg failed or warned while decoding (corrupt or truncated data): sharp refuses it, saying why. */
  | 'corrupt';

export interface JpegDecodeOptions {
  /** The caller's pixel limit, on the JPEG's own size as sharp's `limitInputPixels` is. */
  maxPixels: number;
  /**
   * The profile an embedded ICC profile is converted to, as libvips' icc_transform does (perceptual intent, 8 bits,
   * no black point compensation): for sharp's bytes, libvips' own sRGB profile (what sharp embeds with
   * `withIccProfile('srgb')`). Without it a JPEG with an embedded profile is declined.
   */
  outputProfile?: Uint8Array;
}

/**
 * A JPEG decoded to RGB, converted from its embedded profile to `outputProfile` and turned upright by its EXIF
 * orientation, byte for byte what
 * `sharp(bytes, { failOn: 'warning' }).rotate().flatten().toColourspace('srgb').removeAlpha().raw()` gives, or why it
 * is left to sharp. Throws when the addon is not available (check {@link nativeJpegAvailable} first), and for
 * arguments of the wrong type.
 */
export function decodeJpegLikeSharp(
  bytes: Uint8Array,
  { maxPixels, outputProfile }: JpegDecodeOptions,
): DecodedRgb | { declined: JpegDecline } {
  // The addon reads the header, declines what sharp would treat otherwise, and checks maxPixels
  // before it allocates anything.
  const decoded = requireBinding().decode(bytes, maxPixels, outputProfile, 1, true);
  if ('reason' in decoded) return { declined: decoded.reason };
  const { width, height, data } = decoded;
  return { width, height, data };
}

/** One of libjpeg's scaled decodes: 1/2, 1/4 or 1/8 of each side (rounded up), or the whole image. */
export type JpegShrink = 1 | 2 | 4 | 8;

/** A JPEG decoded at a reduced scale and not yet turned: `orientation` (EXIF, 0 or 1 for none) is still to apply. */
export interface ShrunkJpeg extends DecodedRgb {
  orientation: number;
}

/**
 * The first step of sharp's reduced decode (`.rotate().resize(…)` of a JPEG): libvips' shrink-on-load, libjpeg's
 * scaled IDCT at 1/`shrink`, with an embedded profile converted to `outputProfile`, in the JPEG's stored frame. Its
 * resize comes next, then {@link orientLikeSharp}, as sharp orders them. Declines what {@link decodeJpegLikeSharp}
 * declines.
 */
export function decodeJpegShrunk(
  bytes: Uint8Array,
  { maxPixels, outputProfile, shrink }: JpegDecodeOptions & { shrink: JpegShrink },
): ShrunkJpeg | { declined: JpegDecline } {
  const decoded = requireBinding().decode(bytes, maxPixels, outputProfile, shrink, false);
  return 'reason' in decoded ? { declined: decoded.reason } : decoded;
}

/** `image` turned upright by EXIF `orientation` (1–8; sides swapped for 5–8), as libvips' autorotate turns it. */
export function orientLikeSharp(image: DecodedRgb, orientation: number): DecodedRgb {
  const swapped = orientation >= 5;
  return {
    width: swapped ? image.height : image.width,
    height: swapped ? image.width : image.height,
    data: requireBinding().orient(image.data, image.width, image.height, orientation),
  };
}
