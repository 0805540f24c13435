/**
 * JPEG decoding through the system's libjpeg-turbo (Debian's libjpeg62-turbo), synchronously on the calling thread.
 * For the plain JPEGs that make most uploads (three YCbCr components, no ICC profile, no corruption), EXIF
 * orientation applied, it gives byte for byte what sharp 0.35.5 decodes, in a fraction of sharp's time: both run
 * libjpeg-turbo's integer IDCT and fancy upsampling, which are exact, and turning a photo upright only moves pixels.
 * Every other JPEG is declined, with the reason, and left to sharp.
 *
 * The addon (packages/jpeg/native) validates its arguments (TypeError / RangeError with
 * `code: 'ERR_JPEG_INVALID_ARGUMENT'`) and turns every libjpeg error and warning into a declined decode; it never
 * aborts the process. It keeps no shared state, so worker threads may call it concurrently.
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
  decode(bytes: Uint8Array, maxPixels: number): DecodedRgb | NotDecoded;
  libjpegTurboVersion: number;
}

function loadBinding(): NativeBinding | null {
  try {
    return createRequire(import.meta.url)('../build/Release/jpeg_binding.node') as NativeBinding;
  } catch {
    // Not built (no compiler or no libjpeg headers at install time): callers decode with sharp.
    return null;
  }
}

const binding = loadBinding();

/** false when the addon could not be loaded (then callers use sharp); never throws at import. */
export const nativeJpegAvailable: boolean = binding !== null;

/** The linked libjpeg-turbo as MMMmmmppp (2.1.5: 2001005); 0 without the addon or for another libjpeg. */
export const libjpegTurboVersion: number = binding?.libjpegTurboVersion ?? 0;

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
  /** Not three YCbCr components (grey, CMYK, YCCK, RGB without a transform): libvips converts these. */
  | 'colour-space'
  /** An embedded ICC profile: sharp converts through it to sRGB. */
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
}

/**
 * A plain JPEG decoded to RGB and turned upright by its EXIF orientation, byte for byte what
 * `sharp(bytes, { failOn: 'warning' }).rotate().flatten().toColourspace('srgb').removeAlpha().raw()` gives, or why it
 * is left to sharp. Throws when the addon is not available (check {@link nativeJpegAvailable} first), and for
 * arguments of the wrong type.
 */
export function decodeJpegLikeSharp(
  bytes: Uint8Array,
  { maxPixels }: JpegDecodeOptions,
): DecodedRgb | { declined: JpegDecline } {
  // The addon reads the header, declines what sharp would treat otherwise, and checks maxPixels
  // before it allocates anything.
  const decoded = requireBinding().decode(bytes, maxPixels);
  return 'reason' in decoded ? { declined: decoded.reason } : decoded;
}
