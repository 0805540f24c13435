/**
 * One thread that holds every model's session for several pipeline threads, so that the inputs
 * of all of them meet in one batcher per model. That is what a GPU needs: at batch 1 it is
 * launch-bound (~1.3 ms a run whatever the model), batched it runs thousands of faces a second,
 * while decoding and pre- and post-processing stay spread over the pipeline threads' cores.
 */
import type { MessagePort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

import type { ResolvedModel } from '../manifest.js';
import type { BatchObserver } from './batcher.js';
import { answerRequests, ThreadRequester } from './module-thread.js';
import {
  openSession,
  sessionKey,
  type ExtraOutput,
  type LoadedSession,
  type SessionPlacement,
  type SessionSettings,
} from './session.js';

/** `key`: the session's {@link sessionKey} (a model may have a second session with extra outputs). */
type HostRequest =
  | { type: 'open'; model: ResolvedModel; extraOutputs: ExtraOutput[] }
  | { type: 'run'; key: string; data: Float32Array; dimensions: number[] };

interface SessionDescription {
  inputNames: string[];
  outputNames: string[];
  zeroedWeights: number;
  floatWeights: number;
  placement: SessionPlacement;
  batchable: boolean;
}

interface RunOutput {
  data: Float32Array;
  dimensions: number[];
}

type HostAnswer = SessionDescription | RunOutput[];

/** The host side: opens each model once, whoever asks first, and runs what every client sends. */
export class InferenceHost {
  private readonly sessions = new Map<string, Promise<LoadedSession>>();

  constructor(
    private readonly settings: Omit<SessionSettings, 'remote' | 'threads'>,
    private readonly observer?: {
      onBatch(model: string, size: number, waitSeconds: number): void;
      onRun(model: string, size: number, seconds: number): void;
    },
  ) {}

  /** Answers one client (a pipeline thread) on `port`. */
  serve(port: MessagePort): void {
    answerRequests<HostRequest, HostAnswer>(port, async (request) => {
      if (request.type === 'open') {
        const loaded = await this.session(request.model, request.extraOutputs);
        const description: SessionDescription = {
          inputNames: [...loaded.inputNames],
          outputNames: [...loaded.outputNames],
          zeroedWeights: loaded.zeroedWeights,
          floatWeights: loaded.floatWeights,
          placement: loaded.placement,
          batchable: loaded.batchable,
        };
        return { answer: description };
      }
      const loaded = await this.sessions.get(request.key);
      if (!loaded) throw new Error(`no session '${request.key}' in the inference host`);
      // A batch's outputs (every one, extra outputs too) are views of one buffer: each client gets its own copy to own.
      const outputs = (await loaded.run(request.data, request.dimensions)).map((tensor) => ({
        data: new Float32Array(tensor.data as Float32Array),
        dimensions: [...tensor.dims],
      }));
      return { answer: outputs, transfer: outputs.map((output) => output.data.buffer as ArrayBuffer) };
    });
  }

  private session(model: ResolvedModel, extraOutputs: readonly ExtraOutput[]): Promise<LoadedSession> {
    const key = sessionKey(model, extraOutputs);
    let session = this.sessions.get(key);
    if (!session) {
      const hostObserver = this.observer;
      const observer: BatchObserver | undefined = hostObserver && {
        onBatch: (size, waitSeconds) => hostObserver.onBatch(model.entry.id, size, waitSeconds),
        onRun: (size, seconds) => hostObserver.onRun(model.entry.id, size, seconds),
      };
      session = openSession(model, this.settings, observer, extraOutputs);
      // A failed open is retried by the next client rather than remembered.
      session.catch(() => this.sessions.delete(key));
      this.sessions.set(key, session);
    }
    return session;
  }

  async close(): Promise<void> {
    const sessions = await Promise.allSettled(this.sessions.values());
    this.sessions.clear();
    await Promise.all(sessions.map((result) => (result.status === 'fulfilled' ? result.value.release() : undefined)));
  }
}

/** The client side, in a pipeline thread: sessions that live in the host, used like local ones. */
export class RemoteSessions {
  private readonly host: ThreadRequester<HostRequest, HostAnswer>;

  constructor(port: MessagePort) {
    this.host = new ThreadRequester(port);
  }

  async open(model: ResolvedModel, extraOutputs: readonly ExtraOutput[] = []): Promise<LoadedSession> {
    const key = sessionKey(model, extraOutputs);
    const description = (await this.host.request({
      type: 'open',
      model,
      extraOutputs: [...extraOutputs],
    })) as SessionDescription;
    return {
      ...description,
      run: async (data, dimensions) => {
        // A copy to give away: the caller may reuse its buffer once this run is answered.
        const copy = new Float32Array(data);
        const outputs = (await this.host.request({ type: 'run', key, data: copy, dimensions: [...dimensions] }, [
          copy.buffer as ArrayBuffer,
        ])) as RunOutput[];
        return outputs.map((output) => new ort.Tensor('float32', output.data, output.dimensions));
      },
      // The host owns the session and releases it when it closes.
      release: async () => {},
    };
  }
}
