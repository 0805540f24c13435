/**
 * The inference host's thread (inference-host.ts). workerData: the session settings. The parent
 * sends `{ port }` once per pipeline thread, and hears `{ batches, runs }` every
 * {@link OBSERVATIONS_INTERVAL_MS}: `[model, size, waitSeconds]` of every batch that left and
 * `[model, size, seconds]` of every batch run since the last.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';

import { InferenceHost } from './inference-host.js';
import { nameThisThread } from '@facegate/threads';

/**
 * Observations go to the parent in bundles: one message per batch and run cost the main thread,
 * which also serves HTTP, over a thousand messages a second on an H200 (docs/benchmarks.md).
 */
export const OBSERVATIONS_INTERVAL_MS = 100;

const parent = parentPort!;
nameThisThread('fg-infer-host');
let batches: Array<[string, number, number]> = [];
let runs: Array<[string, number, number]> = [];
const sendObservations = (): void => {
  if (batches.length === 0 && runs.length === 0) return;
  parent.postMessage({ batches, runs });
  batches = [];
  runs = [];
};
setInterval(sendObservations, OBSERVATIONS_INTERVAL_MS).unref();
const host = new InferenceHost(workerData.settings, {
  onBatch: (model, size, waitSeconds) => batches.push([model, size, waitSeconds]),
  onRun: (model, size, seconds) => runs.push([model, size, seconds]),
});
parent.on('message', (message: { port?: MessagePort; close?: true }) => {
  if (message.port) host.serve(message.port);
  if (message.close) {
    void host.close().then(() => {
      sendObservations();
      parent.postMessage({ closed: true });
    });
  }
});
