import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pipelineConfigFromEnv, readWorkerEnv } from '@facegate/runtime';

// A GPU is launch-bound at batch 1, so a worker pinned to one batches by default; on CPU
// batching was measured not to pay (docs/benchmarks.md), and an explicit MAX_BATCH always wins.
describe('MAX_BATCH default per device', () => {
  const maxBatchOf = (variables: NodeJS.ProcessEnv): number | undefined =>
    pipelineConfigFromEnv(readWorkerEnv(variables)).batch?.maxBatch;

  it('is 1 on CPU and 32 on cuda:N', () => {
    assert.equal(maxBatchOf({}), 1);
    assert.equal(maxBatchOf({ WORKER_DEVICE: 'cuda:1' }), 32);
  });

  it('yields to an explicit MAX_BATCH on either device', () => {
    assert.equal(maxBatchOf({ MAX_BATCH: '4' }), 4);
    assert.equal(maxBatchOf({ WORKER_DEVICE: 'cuda:0', MAX_BATCH: '1' }), 1);
  });
});
