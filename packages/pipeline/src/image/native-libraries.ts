import type { ComponentHealth } from '@facegate/contracts';
import { libjpegTurboVersion, littleCmsVersion, nativeJpegAvailable, nativeJpegLoadError } from '@facegate/jpeg';
import { libpngVersion, nativePngAvailable, nativePngLoadError } from '@facegate/png';
import { nativeResampleAvailable, nativeResampleLoadError, PORTED_LIBVIPS_VERSION } from '@facegate/resample';
import sharp from 'sharp';

import { libvipsAsPorted } from './resize.js';

/*
 * The native addons (@facegate/jpeg, @facegate/png, @facegate/resample) give sharp's bytes at a fraction of its cost,
 * and each falls back to sharp where it is not built (no compiler or headers at install time) or where the installed
 * libvips is not the release it reproduces. Answers do not change, but a fallen-back service spends several
 * milliseconds more per request: what runs is said at start-up and in /health rather than left to be found in a
 * profile.
 */

/** Which library does each image step in this process, and what fell back to sharp or JavaScript and why. */
export interface ImageLibraries {
  jpeg: string;
  png: string;
  resampling: string;
  /** One line per step done by sharp instead of its addon; empty when every addon runs. */
  fallbacks: string[];
}

/** MMMmmmppp (libjpeg-turbo), MMmm (Little CMS) and MMmmpp (libpng) as dotted versions. */
const libjpegTurboRelease = (version: number): string =>
  `${Math.floor(version / 1e6)}.${Math.floor(version / 1e3) % 1000}.${version % 1000}`;
const littleCmsRelease = (version: number): string => `${Math.floor(version / 1000)}.${(version % 1000) / 10}`;
const libpngRelease = (version: number): string =>
  `${Math.floor(version / 10000)}.${Math.floor(version / 100) % 100}.${version % 100}`;

export function imageLibraries(): ImageLibraries {
  const libvips = `sharp (libvips ${sharp.versions.vips})`;
  const notLoaded = (addon: string, why: string | null) => `${addon} not loaded (${why ?? 'unknown reason'})`;
  const fallbacks: string[] = [];
  let jpeg = libvips;
  if (nativeJpegAvailable) {
    const turbo = libjpegTurboVersion ? `libjpeg-turbo ${libjpegTurboRelease(libjpegTurboVersion)}` : 'libjpeg';
    jpeg = `${turbo} and Little CMS ${littleCmsRelease(littleCmsVersion)} (@facegate/jpeg)`;
  } else {
    fallbacks.push(`JPEG decoding by ${libvips}: ${notLoaded('@facegate/jpeg', nativeJpegLoadError)}`);
  }
  const png = nativePngAvailable ? `libpng ${libpngRelease(libpngVersion)} (@facegate/png)` : libvips;
  if (!nativePngAvailable) {
    fallbacks.push(`PNG decoding by ${libvips}: ${notLoaded('@facegate/png', nativePngLoadError)}`);
  }
  let resampling = `@facegate/resample (libvips ${PORTED_LIBVIPS_VERSION}'s resampling, ported)`;
  if (!nativeResampleAvailable) {
    resampling = `${libvips} and JavaScript`;
    fallbacks.push(
      `resampling by ${resampling}, the morph detector's pixel loops by JavaScript: ${notLoaded('@facegate/resample', nativeResampleLoadError)}`,
    );
  } else if (!libvipsAsPorted) {
    resampling += `, with resizes and reduced JPEG decodes by ${libvips}`;
    fallbacks.push(
      `resizes and reduced JPEG decodes by ${libvips}: the ports reproduce libvips ${PORTED_LIBVIPS_VERSION}, not ${sharp.versions.vips}`,
    );
  }
  return { jpeg, png, resampling, fallbacks };
}

/** Always healthy (sharp gives the same answers); the detail says which library does each step, and what fell back. */
export function imageLibrariesHealth(): ComponentHealth {
  const { jpeg, png, resampling, fallbacks } = imageLibraries();
  const using = `JPEG: ${jpeg}; PNG: ${png}; resampling: ${resampling}`;
  return {
    healthy: true,
    state: 'ready',
    detail: fallbacks.length === 0 ? using : `${using}. Slower than built: ${fallbacks.join('; ')}`,
  };
}
