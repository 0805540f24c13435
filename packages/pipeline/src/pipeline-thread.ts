/**
 * One thread of {@link PipelinePool}. workerData: the pipeline configuration and, on a GPU, the
 * ports of the inference hosts that hold the sessions. Says `{ ready }` once loaded, then answers
 * analysis requests.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import sharp from 'sharp';

import type { PipelineConfig } from './config.js';
import { IdleThreads, type IdleThreadPorts } from './onnx/idle-threads.js';
import { RemoteSessions } from './onnx/inference-host.js';
import { answerRequests, nameThisThread, type SerializedThreadError } from '@facegate/threads';
import { FacePipeline, type FaceAnalysis } from './pipeline.js';
import {
  serializePipelineError,
  type PipelineThreadAnswer,
  type PipelineThreadObservations,
  type PipelineThreadReady,
  type PipelineThreadRequest,
} from './pipeline-pool.js';

const { config, hostPorts, idleThreadPorts } = workerData as {
  config: PipelineConfig;
  hostPorts?: MessagePort[];
  idleThreadPorts?: IdleThreadPorts;
};
const parent = parentPort!;
nameThisThread('fg-pipeline');
// Many images at once, one core each: libvips' own threads per image would only contend.
sharp.concurrency(1);
const nothingObserved = (): PipelineThreadObservations => ({ stages: [], batches: [], runs: [], headPoses: [] });
/** What the observer saw since the last answer, which takes it along. */
let observed = nothingObserved();
const pipeline = await FacePipeline.create(
  config,
  {
    onStage: (stage, seconds) => observed.stages.push([stage, seconds]),
    onBatch: (model, size, waitSeconds) => observed.batches.push([model, size, waitSeconds]),
    onRun: (model, size, seconds) => observed.runs.push([model, size, seconds]),
    onHeadPose: (source) => observed.headPoses.push(source),
  },
  hostPorts
    ? { remote: new RemoteSessions(hostPorts) }
    : idleThreadPorts
      ? { idleThreads: new IdleThreads(idleThreadPorts) }
      : {},
);
parent.postMessage({
  ready: { modelId: pipeline.modelId, health: pipeline.health(), placement: pipeline.placement() },
} satisfies { ready: PipelineThreadReady });

answerRequests<PipelineThreadRequest, PipelineThreadAnswer>(
  parent,
  async ({ image, operation }) => {
    let outcome: { analysis: FaceAnalysis } | { failure: SerializedThreadError };
    try {
      outcome = { analysis: await pipeline.analyse(image, operation) };
    } catch (error) {
      outcome = { failure: serializePipelineError(error) };
    }
    const answer: PipelineThreadAnswer = { ...outcome, ...observed };
    observed = nothingObserved();
    return { answer };
  },
  serializePipelineError,
);
