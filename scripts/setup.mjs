#!/usr/bin/env node
// Brings a fresh clone to a runnable state, doing only what is missing: Debian packages,
// npm dependencies, the native addons (FAISS, resample, JPEG, PNG), the default models and the TypeScript build.
// Plain Node with no dependencies, because it runs before `npm install` has.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const withTestDependencies = process.argv.includes('--test');
const quiet = process.argv.includes('--quiet');
// Opt-in CUDA execution provider (scripts/gpu-provider.mjs); the default install is CPU-only.
const withGpu = process.argv.includes('--gpu') || process.env.FACEGATE_GPU === '1';

function say(message) {
  if (!quiet) process.stderr.write(`[setup] ${message}\n`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], ...options });
  if (result.status !== 0) {
    process.stderr.write(`[setup] failed: ${command} ${args.join(' ')}\n`);
    process.exit(result.status ?? 1);
  }
}

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function checkNode() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  if (major < 20 || (major === 20 && minor < 19)) {
    process.stderr.write(`[setup] Node.js >= 20.19 is required (this is ${process.versions.node})\n`);
    process.exit(1);
  }
}

// Debian package -> a file that proves it is installed.
const SYSTEM_PACKAGES = [
  ['libfaiss-dev', '/usr/include/faiss/IndexFlat.h'],
  // Becomes libblas.so.3 through update-alternatives: faiss's BLAS paths (search, IVF training)
  // run 6–60× faster than on the reference BLAS that libfaiss-dev pulls in.
  ['libopenblas0-pthread', '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3'],
  // libjpeg-turbo's and Little CMS's headers and libraries, for the JPEG decode addon (packages/jpeg).
  ['libjpeg62-turbo-dev', '/usr/include/jpeglib.h'],
  ['liblcms2-dev', '/usr/include/lcms2.h'],
  // libpng's headers and library, for the PNG decode addon (packages/png).
  ['libpng-dev', '/usr/include/png.h'],
  ['g++', '/usr/bin/g++'],
  ['make', '/usr/bin/make'],
  ['python3', '/usr/bin/python3'],
];
const TEST_PACKAGES = [
  ['redis-server', '/usr/bin/redis-server'],
  // The read-only data directory drill builds an ext4 volume on a loop device.
  ['e2fsprogs', '/usr/sbin/mkfs.ext4'],
  // xmllint checks real responses against the served XSDs; the web console is tested in Chromium.
  ['libxml2-utils', '/usr/bin/xmllint'],
  ['chromium', '/usr/bin/chromium'],
];

function ensureSystemPackages() {
  const wanted = withTestDependencies ? [...SYSTEM_PACKAGES, ...TEST_PACKAGES] : SYSTEM_PACKAGES;
  const missing = wanted.filter(([, proof]) => !existsSync(proof)).map(([name]) => name);
  if (missing.length === 0) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !has('apt-get')) {
    process.stderr.write(
      `[setup] missing system packages: ${missing.join(' ')}\n` +
        `[setup] install them with: sudo apt-get install -y ${missing.join(' ')}\n`,
    );
    process.exit(1);
  }
  say(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
}

function newestMtime(file) {
  return existsSync(file) ? statSync(file).mtimeMs : 0;
}

function ensureNodeModules() {
  const installedMarker = path.join(root, 'node_modules', '.package-lock.json');
  const lock = path.join(root, 'package-lock.json');
  const manifests = [path.join(root, 'package.json'), lock];
  for (const group of ['apps', 'packages']) {
    for (const name of readdirSync(path.join(root, group)))
      manifests.push(path.join(root, group, name, 'package.json'));
  }
  const installedAt = newestMtime(installedMarker);
  if (installedAt > 0 && manifests.every((file) => newestMtime(file) <= installedAt)) return;
  say('installing npm dependencies');
  // onnxruntime-node would otherwise try to download CUDA parts from outside the registry.
  const env = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' };
  const useCi = existsSync(lock) && installedAt === 0;
  run('npm', useCi ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'], { env });
}

// Native addons built by node-gyp: workspace directory, package name, what the log calls it.
const NATIVE_PACKAGES = [
  ['faiss', '@facegate/faiss', 'the FAISS binding'],
  ['resample', '@facegate/resample', 'the resample addon'],
  ['jpeg', '@facegate/jpeg', 'the JPEG decode addon'],
  ['png', '@facegate/png', 'the PNG decode addon'],
];

// The header every addon includes (packages/native-errors): a change to it rebuilds them all.
const SHARED_NATIVE_HEADERS = path.join(root, 'packages', 'native-errors', 'include', 'facegate');

function ensureNativeBinding() {
  const sharedHeaders = readdirSync(SHARED_NATIVE_HEADERS).map((file) => path.join(SHARED_NATIVE_HEADERS, file));
  for (const [directory, name, description] of NATIVE_PACKAGES) {
    const packageDir = path.join(root, 'packages', directory);
    const release = path.join(packageDir, 'build', 'Release');
    const addon = existsSync(release) ? readdirSync(release).find((file) => file.endsWith('.node')) : undefined;
    const sources = [
      path.join(packageDir, 'binding.gyp'),
      ...readdirSync(path.join(packageDir, 'native')).map((file) => path.join(packageDir, 'native', file)),
      ...sharedHeaders,
    ];
    const builtAt = addon ? newestMtime(path.join(release, addon)) : 0;
    if (builtAt > 0 && sources.every((file) => newestMtime(file) <= builtAt)) continue;
    say(`building ${description}`);
    run('npm', ['run', 'build:native', '--workspace', name]);
  }
}

function ensureModels() {
  run(process.execPath, [path.join(root, 'scripts', 'fetch-models.mjs'), ...(quiet ? ['--quiet'] : [])]);
}

function ensureBuild() {
  run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-b']);
}

async function ensureCudaProvider() {
  if (!withGpu) return;
  const { installCudaProvider } = await import('./gpu-provider.mjs');
  try {
    await installCudaProvider({ log: say });
  } catch (error) {
    process.stderr.write(`[setup] CUDA provider: ${error.message}\n`);
    process.exit(1);
  }
}

checkNode();
ensureSystemPackages();
ensureNodeModules();
await ensureCudaProvider();
ensureNativeBinding();
ensureModels();
ensureBuild();
say('ready');
