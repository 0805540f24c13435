/**
 * Which library does each image step: /health's `image_libraries` and the start-up log say it, so that an addon that
 * failed to build (and left its step to sharp, with the same answers at a higher cost) is seen. The fallback is
 * checked in a child process that starts as if the PNG and resampling addons had not been built.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

import { imageLibraries, imageLibrariesHealth } from '@facegate/pipeline';

import { repoRoot } from '../../tools/eval/dataset.js';

describe('image libraries', () => {
  it('names every addon, with its library versions, as built by the set-up', () => {
    const libraries = imageLibraries();
    assert.match(libraries.jpeg, /^libjpeg-turbo \d+\.\d+\.\d+ and Little CMS 2\.\d+ \(@facegate\/jpeg\)$/);
    assert.match(libraries.png, /^libpng 1\.\d+\.\d+ \(@facegate\/png\)$/);
    assert.match(libraries.resampling, /^@facegate\/resample \(libvips 8\.\d+\.\d+'s resampling, ported\)$/);
    assert.deepEqual(libraries.fallbacks, []);
    const health = imageLibrariesHealth();
    assert.equal(health.healthy, true);
    assert.equal(health.state, 'ready');
    assert.equal(health.detail, `JPEG: ${libraries.jpeg}; PNG: ${libraries.png}; resampling: ${libraries.resampling}`);
  });

  it('says which steps fell back to sharp and why, and still decodes a PNG', () => {
    const script = `
      const { imageLibraries, imageLibrariesHealth } = await import('@facegate/pipeline');
      const { decodeImage } = await import('./packages/pipeline/src/stages/decode.ts');
      const sharp = (await import('sharp')).default;
      const png = await sharp({ create: { width: 7, height: 5, channels: 3, background: '#3a7' } }).png().toBuffer();
      const image = await decodeImage(png, { maxImagePixels: 1e6 });
      process.stdout.write(JSON.stringify({ libraries: imageLibraries(), health: imageLibrariesHealth(), pixel: [...image.data.subarray(0, 3)] }));
    `;
    const child = spawnSync(
      process.execPath,
      [
        '--conditions=development',
        '--import',
        'tsx',
        '--import',
        path.join(repoRoot, 'test/support/without-addon.mjs'),
        '--input-type=module',
        '-e',
        script,
      ],
      {
        cwd: repoRoot,
        encoding: 'utf8',
        env: { ...process.env, FACEGATE_TEST_WITHOUT_ADDONS: 'png_binding.node,resample_binding.node' },
      },
    );
    assert.equal(child.status, 0, child.stderr);
    const { libraries, health, pixel } = JSON.parse(child.stdout) as {
      libraries: ReturnType<typeof imageLibraries>;
      health: ReturnType<typeof imageLibrariesHealth>;
      pixel: number[];
    };
    assert.match(libraries.jpeg, /@facegate\/jpeg/);
    assert.match(libraries.png, /^sharp \(libvips \d+\.\d+\.\d+\)$/);
    assert.match(libraries.resampling, /^sharp \(libvips \d+\.\d+\.\d+\) and JavaScript$/);
    assert.equal(libraries.fallbacks.length, 2);
    assert.match(
      libraries.fallbacks[0]!,
      /^PNG decoding by sharp .*: @facegate\/png not loaded \(Cannot find module '.*png_binding\.node'\)$/,
    );
    assert.match(libraries.fallbacks[1]!, /^resampling by .*: @facegate\/resample not loaded \(Cannot find module/);
    assert.equal(health.healthy, true);
    assert.match(health.detail!, /Slower than built: PNG decoding by sharp/);
    assert.deepEqual(pixel, [0x33, 0xaa, 0x77]);
  });
});
