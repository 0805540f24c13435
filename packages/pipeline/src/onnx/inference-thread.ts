/**
 * One inference thread of {@link InferenceThreads}: holds its own session of every model and
 * runs what the main thread sends. onnxruntime-node runs a session synchronously on the thread
 * that calls `run`, so sessions in one thread never run at the same time.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

import type { ThreadReply, ThreadRequest } from './inference-threads.js';

const sessions = new Map<string, ort.InferenceSession>();
const port = parentPort!;

port.on('message', (request: ThreadRequest) => {
  void handle(request).then(
    (reply) =>
      port.postMessage(
        reply,
        reply.outputs?.map((output) => output.data.buffer as ArrayBuffer),
      ),
    (error: unknown) => port.postMessage({ id: request.id, error: (error as Error).message } satisfies ThreadReply),
  );
});

async function handle(request: ThreadRequest): Promise<ThreadReply> {
  if (request.type === 'open') {
    sessions.set(request.key, await ort.InferenceSession.create(request.bytes, request.options));
    return { id: request.id };
  }
  if (request.type === 'release') {
    await sessions.get(request.key)?.release();
    sessions.delete(request.key);
    return { id: request.id };
  }
  const session = sessions.get(request.key);
  if (!session) throw new Error(`no session '${request.key}' in this inference thread`);
  const results = await session.run({
    [request.inputName]: new ort.Tensor('float32', request.data, request.dimensions),
  });
  return {
    id: request.id,
    outputs: session.outputNames.map((name) => {
      const tensor = results[name]!;
      // A copy the thread can give away (onnxruntime's output buffers may be shared).
      return { data: new Float32Array(tensor.data as Float32Array), dimensions: [...tensor.dims] };
    }),
  };
}
