import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pipelineConfigFromEnv, readWorkerEnv, workerConcurrency } from '@facegate/runtime';

import { probeCuda } from '../../packages/pipeline/src/index.js';

/**
 * Whether GPU 0 can run on this host (never on the CI machines, which have no GPU; the GPU side
 * of the defaults is tested on a made-up host in execution-provider.test.ts).
 */
const gpuRunsHere = probeCuda(0).available;

// A GPU is launch-bound at batch 1, so a worker pinned to one batches by default; on CPU
// batching was measured not to pay (docs/benchmarks.md), and an explicit MAX_BATCH always wins.
describe('MAX_BATCH default per device', () => {
  const maxBatchOf = (variables: NodeJS.ProcessEnv): number | undefined =>
    pipelineConfigFromEnv(readWorkerEnv(variables)).batch?.maxBatch;

  it('is 1 on CPU, 32 on a cuda:N that runs, and 1 where cuda:N falls back to CPU', () => {
    assert.equal(maxBatchOf({}), 1);
    assert.equal(maxBatchOf({ WORKER_DEVICE: 'cuda:0' }), gpuRunsHere ? 32 : 1);
  });

  it("gives a cuda:N that falls back to CPU the CPU's pipeline threads", () => {
    const threadsOf = (variables: NodeJS.ProcessEnv): number | undefined =>
      pipelineConfigFromEnv(readWorkerEnv(variables)).pipelineThreads;
    if (gpuRunsHere) assert.ok(threadsOf({ WORKER_DEVICE: 'cuda:0' })! <= threadsOf({})!, 'half the cores or fewer');
    else assert.equal(threadsOf({ WORKER_DEVICE: 'cuda:0' }), threadsOf({}));
  });

  it('yields to an explicit MAX_BATCH on either device', () => {
    assert.equal(maxBatchOf({ MAX_BATCH: '4' }), 4);
    assert.equal(maxBatchOf({ WORKER_DEVICE: 'cuda:0', MAX_BATCH: '1' }), 1);
  });
});

// One job per pipeline thread leaves the thread idle while its job is elsewhere (HTTP, gallery,
// libvips); a GPU worker needs enough jobs in flight to fill its batches.
describe('WORKER_CONCURRENCY default', () => {
  const concurrencyOf = (variables: NodeJS.ProcessEnv): number => workerConcurrency(readWorkerEnv(variables));

  it('is two jobs per pipeline thread, at least two', () => {
    assert.equal(concurrencyOf({ PIPELINE_THREADS: '0' }), 2);
    assert.equal(concurrencyOf({ PIPELINE_THREADS: '1' }), 2);
    assert.equal(concurrencyOf({ PIPELINE_THREADS: '3' }), 6);
  });

  it('fills a batch, and never exceeds 64', () => {
    assert.equal(concurrencyOf({ MAX_BATCH: '32', PIPELINE_THREADS: '2' }), 32);
    assert.equal(concurrencyOf({ WORKER_DEVICE: 'cuda:0', PIPELINE_THREADS: '2' }), gpuRunsHere ? 32 : 4);
    assert.equal(concurrencyOf({ PIPELINE_THREADS: '200' }), 64);
  });

  it('yields to an explicit WORKER_CONCURRENCY', () => {
    assert.equal(concurrencyOf({ PIPELINE_THREADS: '4', WORKER_CONCURRENCY: '1' }), 1);
  });
});
