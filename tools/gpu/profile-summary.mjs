#!/usr/bin/env node
// Where each thread of a profiled service spent its last SECONDS: for every .cpuprofile in DIR
// (node --cpu-prof writes one per thread), busy milliseconds and the functions with the most
// time of their own and in all. Runs with the packed Node on the GPU host, where nothing else is.
//
//   node tools/gpu/profile-summary.mjs DIR [SECONDS] [TOP]
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

const [dir = '.', seconds = '20', top = '15'] = process.argv.slice(2);
const frameName = ({ callFrame }) =>
  `${callFrame.functionName || '(anonymous)'} ${callFrame.url.split('/').slice(-2).join('/')}:${callFrame.lineNumber}`;

for (const file of readdirSync(dir)
  .filter((name) => name.endsWith('.cpuprofile'))
  .sort()) {
  const profile = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  const from = profile.endTime - Number(seconds) * 1e6;
  const own = new Map();
  const inclusive = new Map();
  let at = profile.startTime;
  let window = 0;
  profile.samples.forEach((id, index) => {
    at += profile.timeDeltas[index];
    const duration = profile.timeDeltas[index + 1] ?? 0;
    if (at < from) return;
    window += duration;
    own.set(frameName(nodes.get(id)), (own.get(frameName(nodes.get(id))) ?? 0) + duration);
    const seen = new Set();
    for (let current = id; current !== undefined; current = parents.get(current)) {
      const name = frameName(nodes.get(current));
      if (!seen.has(name)) inclusive.set(name, (inclusive.get(name) ?? 0) + duration);
      seen.add(name);
    }
  });
  const idle = own.get('(idle) :-1') ?? 0;
  const list = (map) =>
    [...map]
      .filter(([name]) => name !== '(idle) :-1' && name !== '(root) :-1')
      .sort((a, b) => b[1] - a[1])
      .slice(0, Number(top))
      .map(([name, micros]) => `    ${(micros / 1000).toFixed(0).padStart(7)} ms  ${name}`)
      .join('\n');
  console.log(`${file}: ${(window / 1000).toFixed(0)} ms profiled, ${((window - idle) / 1000).toFixed(0)} ms busy`);
  console.log(`  own time:\n${list(own)}\n  in all:\n${list(inclusive)}`);
}
