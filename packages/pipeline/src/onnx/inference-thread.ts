/**
 * One inference thread of {@link InferenceThreads}: holds its own session of every model and
 * runs what the main thread sends. onnxruntime-node runs a session synchronously on the thread
 * that calls `run`, so sessions in one thread never run at the same time.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from './ort.js';

import type { ThreadAnswer, ThreadRequest } from './inference-threads.js';
import { answerRequests, nameThisThread } from '@facegate/threads';

nameThisThread('fg-inference');
const sessions = new Map<string, ort.InferenceSession>();

answerRequests<ThreadRequest, ThreadAnswer>(parentPort!, async (request) => {
  if (request.type === 'open') {
    sessions.set(request.key, await ort.InferenceSession.create(request.bytes, request.options));
    return { answer: undefined };
  }
  if (request.type === 'release') {
    await sessions.get(request.key)?.release();
    sessions.delete(request.key);
    return { answer: undefined };
  }
  const session = sessions.get(request.key);
  if (!session) throw new Error(`no session '${request.key}' in this inference thread`);
  const results = await session.run({
    [request.inputName]: new ort.Tensor('float32', request.data, request.dimensions),
  });
  // Copies the thread can give away (onnxruntime's output buffers may be shared).
  const outputs = session.outputNames.map((name) => {
    const tensor = results[name]!;
    return { data: new Float32Array(tensor.data as Float32Array), dimensions: [...tensor.dims] };
  });
  return { answer: outputs, transfer: outputs.map((output) => output.data.buffer as ArrayBuffer) };
});
