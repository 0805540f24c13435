/**
 * The inference host's thread (inference-host.ts). workerData: the session settings. The parent
 * sends `{ port }` once per pipeline thread, and hears `{ batch: [model, size, waitSeconds] }`
 * of every batch that leaves and `{ run: [model, size, seconds] }` of every batch run.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';

import { InferenceHost } from './inference-host.js';

const parent = parentPort!;
const host = new InferenceHost(workerData.settings, {
  onBatch: (model, size, waitSeconds) => parent.postMessage({ batch: [model, size, waitSeconds] }),
  onRun: (model, size, seconds) => parent.postMessage({ run: [model, size, seconds] }),
});
parent.on('message', (message: { port?: MessagePort; close?: true }) => {
  if (message.port) host.serve(message.port);
  if (message.close) void host.close().then(() => parent.postMessage({ closed: true }));
});
