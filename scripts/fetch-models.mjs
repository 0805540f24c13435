#!/usr/bin/env node
// Fetches the default model pack (models/default) from the npm tarball of
// faceplugin-face-recognition-js@0.0.1 and checks every file against the sha256 in
// models/default/manifest.json.
//
// Only the tarball is downloaded: installing the package would pull its dependency list
// (jest, webpack, ...), which the service has no use for. Plain Node, no dependencies;
// the system `tar` unpacks. Idempotent: files already present with the right sha256 are
// left alone, so a second run makes no network request at all.
//
// Usage: node scripts/fetch-models.mjs [--pack default] [--force]

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const force = args.includes('--force');
const packArgIndex = args.indexOf('--pack');
const packId = packArgIndex >= 0 ? args[packArgIndex + 1] : 'default';

const packDir = path.join(repoRoot, 'models', packId);
const manifest = JSON.parse(await readFile(path.join(packDir, 'manifest.json'), 'utf8'));

async function sha256Of(file) {
  try {
    return createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
  } catch (error) {
    if (error.code === 'ENOENT') return null;
    throw error;
  }
}

const models = Object.values(manifest.models);
const missing = [];
for (const model of models) {
  const actual = await sha256Of(path.join(packDir, model.file));
  if (force || actual !== model.sha256) missing.push(model);
}
if (missing.length === 0) {
  console.log(`models/${packId}: all ${models.length} files present and verified`);
  process.exit(0);
}

const npmSources = new Set(missing.map((model) => model.source?.npm));
if (npmSources.has(undefined) || npmSources.size !== 1) {
  // buffalo_l and other drop-in packs are placed by hand; say which files are wrong.
  console.error(`models/${packId}: these files are missing or fail their sha256 and cannot be fetched:`);
  for (const model of missing) console.error(`  ${model.file} (expected sha256 ${model.sha256 ?? 'n/a'})`);
  console.error('See models/README.md for where to obtain them.');
  process.exit(1);
}
const [npmSpec] = npmSources;

const workDir = await mkdtemp(path.join(tmpdir(), 'facegate-models-'));
try {
  const tarballUrl = execFileSync('npm', ['view', npmSpec, 'dist.tarball'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  if (!/^https:\/\//.test(tarballUrl)) throw new Error(`unexpected tarball URL for ${npmSpec}: ${tarballUrl}`);
  console.log(`downloading ${tarballUrl}`);
  const response = await fetch(tarballUrl);
  if (!response.ok) throw new Error(`GET ${tarballUrl}: HTTP ${response.status}`);
  const tarball = path.join(workDir, 'package.tgz');
  await writeFile(tarball, Buffer.from(await response.arrayBuffer()));

  const members = missing.map((model) => model.source.path);
  execFileSync('tar', ['-xzf', tarball, '-C', workDir, ...members], { stdio: 'inherit' });

  for (const model of missing) {
    const extracted = path.join(workDir, model.source.path);
    const actual = await sha256Of(extracted);
    if (actual !== model.sha256) {
      throw new Error(`${model.source.path}: sha256 ${actual} does not match the manifest's ${model.sha256}`);
    }
    // Copy then rename so that an interrupted run never leaves a half-written model behind.
    const target = path.join(packDir, model.file);
    await copyFile(extracted, `${target}.partial`);
    await rename(`${target}.partial`, target);
    console.log(`  ${model.file} ok (${model.sha256.slice(0, 12)}…)`);
  }
  console.log(`models/${packId}: ${missing.length} file(s) fetched and verified`);
} finally {
  await rm(workDir, { recursive: true, force: true });
}
