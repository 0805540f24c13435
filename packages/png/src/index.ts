/**
 * PNG decoding through the system's libpng (Debian's libpng16), synchronously on the calling thread. For the PNGs
 * whose pixels sharp's decode computes without a colour conversion (8-bit samples or a palette, with or without alpha
 * or a transparent colour; no embedded ICC profile, no eXIf chunk) it gives byte for byte what sharp 0.35.5 decodes,
 * without the ~1 ms that every sharp call costs in libvips pipeline set-up and thread hand-offs: a PNG is lossless, so
 * every correct decoder gives the same samples; palettes are expanded, alpha is flattened onto white with libvips'
 * integer arithmetic (checked on every value and alpha) and grey is repeated into three channels as libvips turns B_W
 * into sRGB. Every other PNG is declined, with the reason, and left to sharp.
 *
 * The addon (packages/png/native) validates its arguments (TypeError / RangeError with
 * `code: 'ERR_PNG_INVALID_ARGUMENT'`) and turns every libpng error and warning into a declined decode; it never aborts
 * the process. It keeps no shared state, so worker threads may call it concurrently.
 */
import { createRequire } from 'node:module';

/** A tightly packed RGB image: 3 bytes per pixel, rows of `width * 3` bytes. */
export interface DecodedRgb {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Why a PNG is left to sharp. */
export type PngDecline =
  /** libpng cannot read its header (no PNG signature, truncated before the image header). */
  | 'unreadable'
  /** 16-bit samples, or greyscale below 8 bits: libvips scales those its own way. */
  | 'format'
  /** An embedded ICC profile, which sharp converts to sRGB. */
  | 'icc-profile'
  /** An eXIf chunk, whose orientation sharp applies. */
  | 'exif'
  /** More pixels than allowed: sharp refuses it, saying so. */
  | 'too-many-pixels'
  /** libpng failed or warned while reading (corrupt or truncated data): sharp decides, as it would have. */
  | 'corrupt';

interface NativeBinding {
  decode(bytes: Uint8Array, maxPixels: number): DecodedRgb | { reason: PngDecline; error: string };
  libpngVersion: number;
}

/** Why the addon could not be loaded, or null where it was. */
let loadError: string | null = null;

function loadBinding(): NativeBinding | null {
  try {
    return createRequire(import.meta.url)('../build/Release/png_binding.node') as NativeBinding;
  } catch (error) {
    // Not built (no compiler or no libpng headers at install time): callers decode with sharp.
    loadError = error instanceof Error ? error.message : String(error);
    return null;
  }
}

const binding = loadBinding();

/** Why the addon could not be loaded (its loader's message, for health and logs); null where it was. */
export const nativePngLoadError: string | null = loadError;

/** false when the addon could not be loaded (then callers use sharp); never throws at import. */
export const nativePngAvailable: boolean = binding !== null;

/** The linked libpng as MMmmpp (1.6.39: 10639); 0 without the addon. */
export const libpngVersion: number = binding?.libpngVersion ?? 0;

/** `error.code` of the TypeError / RangeError the addon throws for an argument it refuses. */
export const PNG_INVALID_ARGUMENT = 'ERR_PNG_INVALID_ARGUMENT';

/**
 * A PNG decoded to RGB, byte for byte what
 * `sharp(bytes, { failOn: 'warning' }).rotate().flatten().toColourspace('srgb').removeAlpha().raw()` gives, or why it
 * is left to sharp. `maxPixels` is the caller's pixel limit on the PNG's size, as sharp's `limitInputPixels`. Throws
 * when the addon is not available (check {@link nativePngAvailable} first), and for arguments of the wrong type.
 */
export function decodePngLikeSharp(
  bytes: Uint8Array,
  { maxPixels }: { maxPixels: number },
): DecodedRgb | { declined: PngDecline } {
  if (binding === null) {
    throw new Error('@facegate/png: the native addon is not built (npm run build:native -w @facegate/png)');
  }
  const decoded = binding.decode(bytes, maxPixels);
  if ('reason' in decoded) return { declined: decoded.reason };
  const { width, height, data } = decoded;
  return { width, height, data };
}
