#!/usr/bin/env node
// Packs what the GPU check needs on a bare GPU host (no Node, no npm, no network) into
// .gpu-pack/ (git-ignored), in parts of at most 58 MiB (a device call carries 64 MiB, the
// checkout of about 5 MiB included): this Node binary, the built project
// with its production dependencies and linux-x64 native modules, the BLAS libraries the FAISS
// binding links to, the default models, 50 shared photos, and the CUDA provider apart.
// tools/gpu/README.md says how to carry the parts there and run tools/gpu/run-check.sh.
//
//   npm run setup -- --gpu && npm run build && node tools/gpu/pack.mjs [--data ../shared/data]
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { installCudaProvider, onnxruntimeDir, readProviderPins } from '../../scripts/gpu-provider.mjs';
import { selectPhotos } from './templates.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values } = parseArgs({
  options: {
    data: { type: 'string', default: path.join(root, '..', 'shared', 'data') },
    out: { type: 'string', default: path.join(root, '.gpu-pack') },
    photos: { type: 'string', default: '50' },
  },
});
const PART_BYTES = 58 * 1024 * 1024;
const out = path.resolve(values.out);
const stage = path.join(out, 'stage');
const log = (message) => process.stderr.write(`[gpu-pack] ${message}\n`);
const run = (command, args, options = {}) =>
  execFileSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });

rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(stage, 'bin'), { recursive: true });
mkdirSync(path.join(stage, 'lib'), { recursive: true });
mkdirSync(path.join(stage, 'photos'), { recursive: true });

// The provider first: it must be in place (and checked) before anything is packed.
const pins = readProviderPins();
await installCudaProvider({ log });
const ortDir = onnxruntimeDir(root);

// Node itself, and the libraries of the native addons that a bare host lacks (FAISS and BLAS,
// libjpeg-turbo, Little CMS, libpng and zlib; glibc and libstdc++ are the host's: CUDA needs them anyway).
copyFileSync(process.execPath, path.join(stage, 'bin', 'node'));
const HOST_PROVIDED = /^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux-x86-64|linux-vdso)\.so/;
for (const nativePackage of ['faiss', 'jpeg', 'png']) {
  const release = path.join(root, 'packages', nativePackage, 'build', 'Release');
  const addon = readdirSync(release).find((name) => name.endsWith('.node'));
  for (const match of run('ldd', [path.join(release, addon)]).matchAll(/^\s*(\S+) => (\S+)/gm)) {
    if (!HOST_PROVIDED.test(match[1])) copyFileSync(match[2], path.join(stage, 'lib', match[1]));
  }
}

// 50 shared photos, spread over the data set (never committed: only packed here).
const photos = selectPhotos(values.data, Number(values.photos));
photos.forEach((photo, index) =>
  copyFileSync(
    path.join(values.data, photo),
    path.join(stage, 'photos', `${String(index).padStart(2, '0')}-${path.basename(photo)}`),
  ),
);

// The project: manifests, builds, models, production dependencies (onnxruntime-node for linux-x64 only).
// npm ls exits non-zero over harmless oddities (node-gyp leaves build files in a node_modules
// folder of its own); its list is still whole.
const listProduction = () => {
  try {
    return run('npm', ['ls', '--omit=dev', '--parseable', '--all'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] });
  } catch (error) {
    if (typeof error.stdout === 'string' && error.stdout.trim()) return error.stdout;
    throw error;
  }
};
const production = listProduction()
  .trim()
  .split('\n')
  .map((full) => path.relative(root, full))
  .filter((relative) => relative.includes('node_modules'));
const workspaces = ['apps', 'packages'].flatMap((group) =>
  readdirSync(path.join(root, group)).map((name) => path.join(group, name)),
);
const projectFiles = [
  'package.json',
  'models',
  'tools/gpu',
  'node_modules/@facegate',
  ...production,
  ...workspaces.flatMap((workspace) =>
    // Lua scripts are read from src/ at run time (packages/queue's LuaScripts).
    ['package.json', 'dist', 'build/Release', 'cuda-provider.json', 'node_modules', 'src/lua', 'src/cluster/lua']
      .map((entry) => path.join(workspace, entry))
      .filter((entry) => existsSync(path.join(root, entry))),
  ),
];
const ortRelative = path.relative(root, ortDir);
const excluded = [
  'node_modules/onnxruntime-node/bin/napi-v6/darwin',
  'node_modules/onnxruntime-node/bin/napi-v6/win32',
  'node_modules/onnxruntime-node/bin/napi-v6/linux/arm64',
  ...Object.keys(pins.files).map((name) => path.join(ortRelative, name)),
  'models/cache',
  'node_modules/better-sqlite3/deps',
  'node_modules/better-sqlite3/src',
  '*/build/Release/obj',
  '*/build/Release/obj.target',
  '*.a',
  '*.tsbuildinfo',
  '*.map',
  '*.d.ts',
];
const bundle = path.join(out, 'bundle.tar.gz');
log('packing the project, Node and the models');
run('tar', [
  '-czf',
  bundle,
  ...excluded.map((pattern) => `--exclude=${pattern}`),
  '-C',
  root,
  ...[...new Set(projectFiles)],
  '-C',
  stage,
  'bin',
  'lib',
  'photos',
]);
log('packing the CUDA provider');
const provider = path.join(out, 'provider.tar.gz');
run('tar', ['-czf', provider, '-C', ortDir, ...Object.keys(pins.files)]);

for (const archive of [bundle, provider]) {
  run('split', ['-b', String(PART_BYTES), '-d', '-a', '2', archive, `${archive}.part-`]);
  rmSync(archive);
}
rmSync(stage, { recursive: true });
const parts = readdirSync(out)
  .filter((name) => name.includes('.part-'))
  .sort();
writeFileSync(path.join(out, 'SHA256SUMS'), run('sha256sum', parts, { cwd: out }));
for (const part of parts)
  log(`${part}: ${(Number(run('stat', ['-c', '%s', part], { cwd: out })) / 2 ** 20).toFixed(1)} MiB`);
log(`${parts.length} parts and SHA256SUMS in ${out}`);
