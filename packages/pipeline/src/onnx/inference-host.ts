/**
 * Threads that hold the models' sessions for several pipeline threads, so that the inputs of all
 * of them meet in one batcher per model. That is what a GPU needs: at batch 1 it is launch-bound
 * (~1.3 ms a run whatever the model), batched it runs thousands of faces a second, while decoding
 * and pre- and post-processing stay spread over the pipeline threads' cores. onnxruntime-node
 * runs a session on the calling thread and returns when the run is over, so one host runs one
 * batch at a time; with several hosts, each holds some of the models and their runs overlap.
 */
import type { MessagePort } from 'node:worker_threads';
import * as ort from './ort.js';

import type { ResolvedModel } from '../manifest.js';
import type { BatchObserver } from './batcher.js';
import { answerRequests, ThreadRequester } from '@facegate/threads';
import {
  openSession,
  sessionKey,
  sessionLabel,
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
  vectorisedPRelu: number;
  paddedChannelRegions: number;
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

  /** The sessions this host holds, by {@link sessionKey}. */
  get sessionKeys(): string[] {
    return [...this.sessions.keys()];
  }

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
          vectorisedPRelu: loaded.vectorisedPRelu,
          paddedChannelRegions: loaded.paddedChannelRegions,
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
      const label = sessionLabel(model, extraOutputs);
      const observer: BatchObserver | undefined = hostObserver && {
        onBatch: (size, waitSeconds) => hostObserver.onBatch(label, size, waitSeconds),
        onRun: (size, seconds) => hostObserver.onRun(label, size, seconds),
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

/**
 * The client side, in a pipeline thread: sessions that live in the hosts, used like local ones.
 * Each session opened goes to the least loaded host so far ({@link runWeight}): a host
 * runs one batch at a time, and with the n-th session on host n modulo their number, two hosts on
 * an H200 got the detector, recognition and head pose on one (13 ms of runs a round) and the
 * three small models on the other (6.5 ms). Every pipeline thread opens the same models in the
 * same order, so each model lives in one host; were the orders to differ, a model would only be
 * opened in two hosts (another session, same results).
 */
export class RemoteSessions {
  private readonly hosts: Array<ThreadRequester<HostRequest, HostAnswer>>;
  private readonly hostOfKey = new Map<string, ThreadRequester<HostRequest, HostAnswer>>();
  /** Per host, the weights of the sessions dealt to it. */
  private readonly load: number[];
  private opening: Promise<unknown> = Promise.resolve();

  constructor(ports: readonly MessagePort[]) {
    if (ports.length === 0) throw new RangeError('remote sessions need at least one host');
    this.hosts = ports.map((port) => new ThreadRequester<HostRequest, HostAnswer>(port));
    this.load = ports.map(() => 0);
  }

  async open(model: ResolvedModel, extraOutputs: readonly ExtraOutput[] = []): Promise<LoadedSession> {
    const key = sessionKey(model, extraOutputs);
    let host = this.hostOfKey.get(key);
    if (!host) {
      const index = leastLoaded(this.load);
      this.load[index]! += runWeight(model);
      host = this.hosts[index]!;
      this.hostOfKey.set(key, host);
    }
    // One open at a time: onnxruntime-node's environment set-up is not safe against threads
    // (here, hosts) creating their first sessions at once.
    const opened = this.opening.then(() => host.request({ type: 'open', model, extraOutputs: [...extraOutputs] }));
    this.opening = opened.catch(() => undefined);
    const description = (await opened) as SessionDescription;
    return {
      ...description,
      run: async (data, dimensions) => {
        // A copy to give away: the caller may reuse its buffer once this run is answered.
        const copy = new Float32Array(data);
        const outputs = (await host.request({ type: 'run', key, data: copy, dimensions: [...dimensions] }, [
          copy.buffer as ArrayBuffer,
        ])) as RunOutput[];
        return outputs.map((output) => new ort.Tensor('float32', output.data, output.dimensions));
      },
      // The host owns the session and releases it when it closes.
      release: async () => {},
    };
  }
}

/**
 * A run's fixed cost, in the input values that take as long: on an H200 a batched run took about
 * 1.6 ms plus 0.019 ms per thousand input values of one inference (detector 320×240×3: 5.9 ms,
 * head pose 224×224×3: 4.7, recognition 112×112×3: 2.8, landmarks 64×64: 2.0, eyes: 1.3).
 */
const RUN_FIXED_COST = 85_000;

/**
 * What the dealing of sessions to hosts weighs a model by: the fixed cost of a run plus the input
 * values of one inference (batch dimension and free dimensions counted as 1).
 */
export function runWeight(model: ResolvedModel): number {
  const values = model.entry.inputs.reduce(
    (sum, input) => sum + input.shape.reduce<number>((product, dimension) => product * (dimension ?? 1), 1),
    0,
  );
  return RUN_FIXED_COST + values;
}

/** The index of the smallest load, the first of equals. */
export function leastLoaded(loads: readonly number[]): number {
  return loads.reduce((best, load, index) => (load < loads[best]! ? index : best), 0);
}
