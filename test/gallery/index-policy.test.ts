import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '@facegate/contracts';
import { Gallery, checkIndexPolicy, loadFaissEngine, partitionIndexSettings } from '@facegate/gallery';
import { indexPolicyFromEnv, readWorkerEnv } from '@facegate/runtime';
import { facegateCode, withTempDir } from './helpers.js';

const PARTITION_INDEXES = JSON.stringify({
  watchlist: { factory: 'PCA128,HNSW32,RFlat', search: { efSearch: 256, k_factor_rf: 4 } },
  archive: { search: { nprobe: 64 } },
});

describe('index policy from the environment', () => {
  it('gives each partition its own index and search parameters over the defaults', () => {
    const policy = indexPolicyFromEnv({
      INDEX_FACTORY: 'IVF256,Flat',
      INDEX_SEARCH_PARAMETERS: '{"nprobe": 16}',
      PARTITION_INDEXES,
    });
    assert.deepEqual(partitionIndexSettings('watchlist', policy), {
      description: 'IDMap2,PCA128,HNSW32,RFlat',
      searchParameters: { efSearch: 256, nprobe: 16, k_factor_rf: 4 },
    });
    assert.deepEqual(partitionIndexSettings('archive', policy), {
      // IVF keeps caller ids itself: no id map around it.
      description: 'IVF256,Flat',
      searchParameters: { efSearch: 128, nprobe: 64 },
    });
    assert.deepEqual(partitionIndexSettings('other', policy).description, 'IVF256,Flat');
  });

  it('takes a partition called like a property of every object (constructor, toString) for any other', () => {
    const policy = indexPolicyFromEnv({ INDEX_FACTORY: 'Flat', PARTITION_INDEXES });
    const plain = partitionIndexSettings('other', policy);
    for (const partition of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf']) {
      assert.deepEqual(partitionIndexSettings(partition, policy), plain, partition);
    }
    const named = indexPolicyFromEnv({
      INDEX_FACTORY: 'Flat',
      PARTITION_INDEXES: JSON.stringify({ constructor: { factory: 'HNSW32' } }),
    });
    assert.equal(partitionIndexSettings('constructor', named).description, 'IDMap2,HNSW32');
    assert.equal(partitionIndexSettings('toString', named).description, plain.description);
  });

  it('refuses malformed settings at start-up, naming the variable', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ PARTITION_INDEXES: '{watchlist: 1}' }, /PARTITION_INDEXES is not valid JSON/],
      [{ PARTITION_INDEXES: '{"watchlist": {"factory": ""}}' }, /PARTITION_INDEXES\/watchlist\/factory/],
      [
        { PARTITION_INDEXES: '{"watchlist": {"index": "HNSW32"}}' },
        /PARTITION_INDEXES\/watchlist must NOT have additional/,
      ],
      [{ INDEX_SEARCH_PARAMETERS: '{"efSearch": "many"}' }, /INDEX_SEARCH_PARAMETERS\/efSearch must be number/],
      [{ INDEX_SEARCH_PARAMETERS: '[1, 2]' }, /INDEX_SEARCH_PARAMETERS must be object/],
    ];
    for (const [env, message] of cases) {
      assert.throws(
        () => readWorkerEnv(env),
        (error: unknown) => error instanceof ConfigError && message.test(error.message),
        JSON.stringify(env),
      );
    }
  });

  it('refuses what faiss cannot build, a partition the API cannot name, and parameters no index has', async () => {
    const engine = await loadFaissEngine();
    const refused: Array<[Parameters<typeof checkIndexPolicy>[0], RegExp]> = [
      [{ indexByPartition: { watchlist: 'HNSW32,Nonsense' } }, /'IDMap2,HNSW32,Nonsense' is not usable/],
      [{ indexByPartition: { 'bad name!': 'HNSW32' } }, /partition must be/],
      [{ searchParameters: { efSearch: 64 } }, /efSearch applies to none of IDMap2,Flat/],
      [
        { indexByPartition: { a: 'HNSW32' }, searchParametersByPartition: { b: { efSearch: 64 } } },
        /efSearch of partition 'b'/,
      ],
    ];
    for (const [policy, message] of refused) {
      assert.throws(
        () => checkIndexPolicy(policy, engine, 512),
        (error: unknown) => {
          return error instanceof Error && message.test(error.message);
        },
      );
    }
    checkIndexPolicy(indexPolicyFromEnv({ INDEX_FACTORY: 'IVF256,Flat', PARTITION_INDEXES }), engine, 512);
    // The same per-partition nprobe over an exact default index would never apply.
    assert.throws(
      () => checkIndexPolicy(indexPolicyFromEnv({ INDEX_FACTORY: 'IDMap2,Flat', PARTITION_INDEXES }), engine, 512),
      /nprobe of partition 'archive' applies to none of IDMap2,Flat/,
    );
  });

  it('is checked when a gallery opens', async () => {
    await withTempDir(async (dir) => {
      await assert.rejects(
        Gallery.open({ dataDir: dir, snapshotIntervalMs: 0, indexByPartition: { p: 'NotAnIndex' } }),
        facegateCode('INVALID_REQUEST'),
      );
    });
  });
});
