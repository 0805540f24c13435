import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { ConfigError } from '@facegate/contracts';
import {
  ENCRYPTION_SETTING,
  Gallery,
  RedisTemplateStore,
  Shard,
  SqliteTemplateStore,
  TemplateCipher,
  TemplateDecryptionError,
  associatedData,
  newTemplateKeyEntry,
  parseTemplateKeyFile,
  parseTemplateKeysVariable,
  shardOf,
  type DecryptionFailureReason,
  type TemplateKey,
  type TemplateStore,
} from '@facegate/gallery';
import { silentLogger, type Logger } from '@facegate/observability';
import { GENERATED_KEY_FILE, loadTemplateCipher, readWorkerEnv, rekey } from '@facegate/worker';
import { decodeShardOp, encodeShardOp } from '../../apps/worker/src/cluster/shard-ops.js';
import { StoredTemplateCodec } from '../../packages/gallery/src/template-codec.js';
import { SHARED_REDIS_URL, deletePrefix, testPrefix } from '../distributed/support.js';
import { DIMENSION, exactShardOptions, randomUnitVector, seededRandom, withTempDir } from './helpers.js';

const MODEL = 'm1';

const key = (id: string): TemplateKey => ({ id, secret: randomBytes(32) });
const K1 = key('k1');
const K2 = key('k2');
const ring = (...keys: TemplateKey[]) => new TemplateCipher(keys);
const keysVariable = (...keys: TemplateKey[]) =>
  keys.map(({ id, secret }) => `${id}:${Buffer.from(secret).toString('base64')}`).join(',');

const bytesOf = (template: Float32Array) => Buffer.from(template.buffer, template.byteOffset, template.byteLength);

function decryptionFailure(reason: DecryptionFailureReason): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof TemplateDecryptionError, `expected a TemplateDecryptionError, got ${String(error)}`);
    assert.equal(error.code, 'UNAVAILABLE');
    assert.equal(error.reason, reason);
    return true;
  };
}

/** None of the templates' bytes (not even their first 32) appears in what was persisted. */
function assertNoPlaintext(persisted: Buffer, templates: readonly Float32Array[]): void {
  for (const [i, template] of templates.entries()) {
    assert.equal(persisted.indexOf(bytesOf(template).subarray(0, 32)), -1, `template ${i} is readable at rest`);
  }
}

function logCollector(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger: Logger = {
    debug: () => {},
    info: (message, fields) => lines.push(`info ${message} ${JSON.stringify(fields ?? {})}`),
    warn: (message, fields) => lines.push(`warn ${message} ${JSON.stringify(fields ?? {})}`),
    error: (message, fields) => lines.push(`error ${message} ${JSON.stringify(fields ?? {})}`),
    child: () => logger,
  };
  return { logger, lines };
}

describe('TemplateCipher', () => {
  const template = randomUnitVector(seededRandom(1));
  const aad = associatedData('facegate/template', 'p', 'alice', MODEL, 7n);

  it('round-trips a template and names its key in a versioned envelope', () => {
    const cipher = ring(K1, K2);
    const sealed = cipher.sealTemplate(template, aad);
    assert.equal(cipher.keyIdOf(sealed), 'k1');
    assert.equal(sealed.subarray(0, 3).toString('ascii'), 'FGE');
    assert.equal(sealed.length, 3 + 1 + 1 + 2 + 12 + DIMENSION * 4 + 16);
    assert.deepEqual(cipher.openTemplate(sealed, aad), template);
    assert.notDeepEqual(cipher.sealTemplate(template, aad), sealed, 'a fresh nonce every time');
    assert.equal(sealed.indexOf(bytesOf(template).subarray(0, 16)), -1);
  });

  it('refuses a flipped byte anywhere, with a typed error, and health turns red', () => {
    const cipher = ring(K1);
    const sealed = cipher.sealTemplate(template, aad);
    for (const position of [3, 4, 5, 8, 20, 500, sealed.length - 1]) {
      const tampered = Buffer.from(sealed);
      tampered[position] = tampered[position]! ^ 0x01;
      assert.throws(() => cipher.openTemplate(tampered, aad), TemplateDecryptionError, `byte ${position}`);
    }
    const flippedBody = Buffer.from(sealed);
    flippedBody[100] = flippedBody[100]! ^ 0x80;
    assert.throws(() => cipher.openTemplate(flippedBody, aad), decryptionFailure('authentication-failed'));
    assert.throws(() => cipher.openTemplate(sealed.subarray(0, 10), aad), decryptionFailure('malformed'));
    const health = cipher.health();
    assert.equal(health.healthy, false);
    assert.match(health.detail!, /decryptions failed since start/);
  });

  it('binds the ciphertext to what it was sealed for', () => {
    const cipher = ring(K1);
    const sealed = cipher.sealTemplate(template, aad);
    for (const other of [
      associatedData('facegate/template', 'p', 'mallory', MODEL, 7n),
      associatedData('facegate/template', 'q', 'alice', MODEL, 7n),
      associatedData('facegate/template', 'p', 'alice', MODEL, 8n),
      associatedData('facegate/template', 'p', 'alic', `e${MODEL}`, 7n),
      associatedData('facegate/index-snapshot', 'p', 'alice', MODEL, 7n),
    ]) {
      assert.throws(() => cipher.openTemplate(sealed, other), decryptionFailure('authentication-failed'));
    }
  });

  it('opens with any key of the ring, fails on a missing or a different key', () => {
    const sealedUnderK1 = ring(K1).sealTemplate(template, aad);
    assert.deepEqual(ring(K2, K1).openTemplate(sealedUnderK1, aad), template);
    assert.throws(() => ring(K2).openTemplate(sealedUnderK1, aad), decryptionFailure('unknown-key'));
    assert.throws(() => ring(key('k1')).openTemplate(sealedUnderK1, aad), decryptionFailure('authentication-failed'));
  });

  it('reports key ids in health, never key material', () => {
    const cipher = ring(K2, K1);
    const health = cipher.health();
    assert.deepEqual(
      { healthy: health.healthy, state: health.state, model: health.model },
      { healthy: true, state: 'ready', model: 'AES-256-GCM' },
    );
    assert.match(health.detail!, /active key k2, also reads k1/);
    const shown = `${JSON.stringify(health)} ${JSON.stringify(cipher)} ${String(Object.values(cipher))}`;
    for (const { secret } of [K1, K2]) {
      assert.ok(
        !shown.includes(Buffer.from(secret).toString('base64')),
        "!shown.includes(Buffer.from(secret).toString('base64'))",
      );
      assert.ok(
        !shown.includes(Buffer.from(secret).toString('hex')),
        "!shown.includes(Buffer.from(secret).toString('hex'))",
      );
    }
  });
});

describe('StoredTemplateCodec.decodeInto', () => {
  const templates = [randomUnitVector(seededRandom(2)), randomUnitVector(seededRandom(3))];
  const rows = templates.map((_, i) => ({
    partition: 'p',
    subjectId: `s${i}`,
    modelId: MODEL,
    faissId: BigInt(i + 1),
  }));

  it('writes sealed and plaintext rows at their offsets, as decode reads them, and nothing else', () => {
    const codec = new StoredTemplateCodec(DIMENSION, ring(K1));
    const stored = [codec.encode(templates[0]!, rows[0]!), bytesOf(templates[1]!)];
    const target = new Float32Array(DIMENSION * 2 + 3).fill(-7);
    codec.decodeInto(stored[0]!, rows[0]!, target, 1);
    // A Buffer's bytes need not sit on a 4-byte boundary in their pool.
    const unaligned = Buffer.alloc(stored[1]!.length + 1).subarray(1);
    stored[1]!.copy(unaligned);
    codec.decodeInto(unaligned, rows[1]!, target, 1 + DIMENSION);
    assert.deepEqual(target.subarray(1, 1 + DIMENSION), codec.decode(stored[0]!, rows[0]!));
    assert.deepEqual(target.subarray(1 + DIMENSION, 1 + 2 * DIMENSION), templates[1]);
    assert.deepEqual([target[0], target[2 * DIMENSION + 1], target[2 * DIMENSION + 2]], [-7, -7, -7]);
  });

  it('refuses what decode refuses, before writing', async () => {
    const sealed = new StoredTemplateCodec(DIMENSION, ring(K1)).encode(templates[0]!, rows[0]!);
    const target = new Float32Array(DIMENSION).fill(-7);
    assert.throws(
      () => new StoredTemplateCodec(DIMENSION, undefined).decodeInto(sealed, rows[0]!, target, 0),
      decryptionFailure('encryption-disabled'),
    );
    assert.throws(
      () => new StoredTemplateCodec(DIMENSION, ring(K1)).decodeInto(sealed, rows[1]!, target, 0),
      decryptionFailure('authentication-failed'),
    );
    const encryptedOnly = new StoredTemplateCodec(DIMENSION, ring(K1));
    await encryptedOnly.markEncryptedOnly({ setSetting: async () => {} });
    assert.throws(
      () => encryptedOnly.decodeInto(bytesOf(templates[1]!), rows[1]!, target, 0),
      decryptionFailure('plaintext-refused'),
    );
    assert.ok(
      target.every((value) => value === -7),
      'target.every((value) => value === -7)',
    );
  });
});

describe('template key configuration', () => {
  const valid = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;

  it('reads rings from the variable and from files, first key active', () => {
    const keys = parseTemplateKeysVariable(`${valid('new')}, ${valid('old')}`);
    assert.deepEqual(
      keys.map((k) => k.id),
      ['new', 'old'],
    );
    const fromFile = parseTemplateKeyFile(`# comment\n\n${valid('a')}  # trailing\n  ${valid('b')}\n`, 'file');
    assert.deepEqual(
      fromFile.map((k) => k.id),
      ['a', 'b'],
    );
    assert.equal(new TemplateCipher(parseTemplateKeysVariable(newTemplateKeyEntry())).keyIds.length, 1);
  });

  it('refuses malformed entries, wrong lengths and duplicate ids, without echoing keys', () => {
    const short = randomBytes(16).toString('base64');
    const long = randomBytes(33).toString('base64');
    const cases: Array<[string, RegExp]> = [
      ['no-colon-here', /entry 1 is not keyid:base64/],
      [`k1:${short}`, /must be 32 bytes.*got 16 bytes/],
      [`k1:${long}`, /must be 32 bytes/],
      [`k1:${randomBytes(32).toString('base64url')}`, /must be 32 bytes in standard base64/],
      [`bad id:${randomBytes(32).toString('base64')}`, /key id must be/],
      [
        `k1:${randomBytes(32).toString('base64')},k1:${randomBytes(32).toString('base64')}`,
        /'k1' appears more than once/,
      ],
      [' , ', /holds no key/],
    ];
    for (const [value, expected] of cases) {
      assert.throws(
        () => parseTemplateKeysVariable(value),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, 'error instanceof ConfigError');
          assert.match(error.message, expected);
          for (const secret of value.split(',').map((entry) => entry.split(':')[1] ?? '')) {
            if (secret.length > 8) assert.ok(!error.message.includes(secret), 'key material in the message');
          }
          return true;
        },
      );
    }
  });

  it('validates the variables with the rest of the environment', () => {
    assert.throws(() => readWorkerEnv({ ALLOW_PLAINTEXT_TEMPLATES: 'maybe' }), ConfigError);
    assert.equal(readWorkerEnv({}).ALLOW_PLAINTEXT_TEMPLATES, false);
  });

  it('generates a key beside the data once in embedded mode, and warns about it', async () => {
    await withTempDir(async (dataDir) => {
      const env = { DATA_DIR: dataDir, ALLOW_PLAINTEXT_TEMPLATES: false };
      const { logger, lines } = logCollector();
      const first = await loadTemplateCipher(env, { mode: 'embedded', logger });
      const keyFile = join(dataDir, GENERATED_KEY_FILE);
      assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
      const second = await loadTemplateCipher(env, { mode: 'embedded', logger });
      assert.equal(second?.activeKeyId, first?.activeKeyId, 'the same key at the next start');
      assert.ok(
        lines.some((line) => line.startsWith('warn') && /key stored beside the data/.test(line)),
        "lines.some((line) => line.startsWith('warn') && /key stored beside the data/.test(line))",
      );
      const secret = (await readFile(keyFile, 'utf8')).split(':').at(-1)!.trim();
      assert.ok(!lines.join('\n').includes(secret), 'the key is never logged');
    });
  });

  it('refuses a distributed worker without keys unless plaintext is explicitly allowed', async () => {
    await withTempDir(async (dataDir) => {
      const none = { DATA_DIR: dataDir, ALLOW_PLAINTEXT_TEMPLATES: false };
      await assert.rejects(loadTemplateCipher(none, { mode: 'distributed', logger: silentLogger }), /TEMPLATE_KEYS/);
      const plain = await loadTemplateCipher(
        { ...none, ALLOW_PLAINTEXT_TEMPLATES: true },
        { mode: 'distributed', logger: silentLogger },
      );
      assert.equal(plain, undefined);
      assert.equal(existsSync(join(dataDir, GENERATED_KEY_FILE)), false);
      const both = { ...none, TEMPLATE_KEYS: keysVariable(K1), TEMPLATE_KEYS_FILE: join(dataDir, 'k') };
      await assert.rejects(loadTemplateCipher(both, { mode: 'distributed', logger: silentLogger }), /not both/);
      await assert.rejects(
        loadTemplateCipher(
          { ...none, TEMPLATE_KEYS_FILE: join(dataDir, 'absent') },
          {
            mode: 'distributed',
            logger: silentLogger,
          },
        ),
        /cannot be read \(ENOENT\)/,
      );
      // A tool never invents a key: it must use the service's.
      await assert.rejects(loadTemplateCipher(none, { mode: 'tool', logger: silentLogger }), ConfigError);
    });
  });

  it('reads TEMPLATE_KEYS_FILE and warns when others can read it', async () => {
    await withTempDir(async (dir) => {
      const keyFile = join(dir, 'keys');
      await writeFile(keyFile, `# ring\n${keysVariable(K2)}\n${keysVariable(K1)}\n`);
      await chmod(keyFile, 0o644);
      const { logger, lines } = logCollector();
      const cipher = await loadTemplateCipher(
        { DATA_DIR: dir, TEMPLATE_KEYS_FILE: keyFile, ALLOW_PLAINTEXT_TEMPLATES: false },
        { mode: 'distributed', logger },
      );
      assert.deepEqual(cipher?.keyIds, ['k2', 'k1']);
      assert.ok(
        lines.some((line) => /readable by other users/.test(line)),
        'lines.some((line) => /readable by other users/.test(line))',
      );
    });
  });
});

/** One store implementation under test, with a back door to what it persisted. */
interface StoreUnderTest {
  open(cipher: TemplateCipher | undefined): Promise<TemplateStore>;
  /** Everything the store has persisted, as bytes. */
  persisted(): Promise<Buffer>;
  /** The stored bytes of every template row of a partition, by faiss id. */
  rows(partition: string): Promise<Map<bigint, Buffer>>;
  /** Writes a row's stored bytes behind the store's back (an attacker with database access). */
  overwrite(partition: string, faissId: bigint, bytes: Buffer): Promise<void>;
  /** Makes the partition's rows look as written before template encryption existed. */
  toPreEncryptionLayout(partition: string): Promise<void>;
}

function sqliteUnderTest(dir: string): StoreUnderTest {
  const path = join(dir, 'gallery.sqlite');
  const withDb = <T>(work: (db: Database.Database) => T): T => {
    const db = new Database(path);
    try {
      return work(db);
    } finally {
      db.close();
    }
  };
  return {
    open: (cipher) => SqliteTemplateStore.open({ path, dimension: DIMENSION, ...(cipher ? { cipher } : {}) }),
    persisted: async () =>
      Buffer.concat(
        await Promise.all([path, `${path}-wal`].filter((file) => existsSync(file)).map((file) => readFile(file))),
      ),
    rows: async (partition) =>
      withDb(
        (db) =>
          new Map(
            db
              .prepare<[string], { faiss_id: number; template: Buffer }>(
                'SELECT faiss_id, template FROM templates WHERE partition = ?',
              )
              .all(partition)
              .map((row) => [BigInt(row.faiss_id), row.template]),
          ),
      ),
    overwrite: async (partition, faissId, bytes) =>
      withDb((db) => {
        db.prepare('UPDATE templates SET template = ? WHERE partition = ? AND faiss_id = ?').run(
          bytes,
          partition,
          Number(faissId),
        );
      }),
    // The table is unchanged: only the bytes in it differ.
    toPreEncryptionLayout: async () => {},
  };
}

const redisPrefixes: string[] = [];
after(async () => {
  for (const prefix of redisPrefixes) await deletePrefix(SHARED_REDIS_URL, prefix);
});

function redisUnderTest(): StoreUnderTest {
  const prefix = testPrefix();
  redisPrefixes.push(prefix);
  const withRedis = async <T>(work: (redis: Redis) => Promise<T>): Promise<T> => {
    const redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      return await work(redis);
    } finally {
      redis.disconnect();
    }
  };
  const vectorsKey = (partition: string) => `${prefix}:gallery:p:${partition}:vectors`;
  return {
    open: (cipher) =>
      RedisTemplateStore.open({
        redisUrl: SHARED_REDIS_URL,
        prefix,
        dimension: DIMENSION,
        ...(cipher ? { cipher } : {}),
      }),
    persisted: () =>
      withRedis(async (redis) => {
        const parts: Buffer[] = [];
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          cursor = next;
          for (const name of keys) {
            const type = await redis.type(name);
            if (type === 'hash') parts.push(...Object.values(await redis.hgetallBuffer(name)));
            if (type === 'string') parts.push((await redis.getBuffer(name)) ?? Buffer.alloc(0));
          }
        } while (cursor !== '0');
        return Buffer.concat(parts);
      }),
    rows: (partition) =>
      withRedis(async (redis) => {
        const all = await redis.hgetallBuffer(vectorsKey(partition));
        return new Map(Object.entries(all).map(([id, bytes]) => [BigInt(id), bytes]));
      }),
    overwrite: (partition, faissId, bytes) =>
      withRedis(async (redis) => {
        await redis.hset(vectorsKey(partition), faissId.toString(), bytes);
      }),
    // Row metas had neither the subject (`sub`) nor the add's seq (`q`).
    toPreEncryptionLayout: (partition) =>
      withRedis(async (redis) => {
        const metasKey = `${prefix}:gallery:p:${partition}:templates`;
        for (const [id, text] of Object.entries(await redis.hgetall(metasKey))) {
          const { m, c } = JSON.parse(text) as { m: string; c: string };
          await redis.hset(metasKey, id, JSON.stringify({ m, c }));
        }
      }),
  };
}

async function enrolAll(store: TemplateStore, subjects: readonly string[], seed: number) {
  const random = seededRandom(seed);
  const templates = new Map<string, Float32Array>();
  const ids = new Map<string, bigint>();
  for (const subjectId of subjects) {
    const template = randomUnitVector(random);
    const receipt = await store.addSubject({
      partition: 'p',
      shard: shardOf(subjectId, 2),
      subjectId,
      modelId: MODEL,
      template,
    });
    templates.set(subjectId, template);
    ids.set(subjectId, receipt.faissId);
  }
  return { templates, ids };
}

async function readBack(store: TemplateStore, subjectId: string): Promise<Float32Array | undefined> {
  return (await store.getSubjectTemplates('p', subjectId))[0]?.template;
}

/** Every template of shard 0 and 1 through scans and the change log, as the index sees them. */
async function scannedTemplates(store: TemplateStore): Promise<Map<bigint, Float32Array>> {
  const found = new Map<bigint, Float32Array>();
  for (const shard of [0, 1]) {
    const scan = await store.openShardScan('p', shard, MODEL, 3);
    for (let batch = await scan.next(); batch !== undefined; batch = await scan.next()) {
      batch.faissIds.forEach((id, i) => found.set(id, batch.vectors.slice(i * DIMENSION, (i + 1) * DIMENSION)));
    }
    await scan.close();
    for (const change of await store.changesSince('p', shard, 0)) {
      if (change.kind === 'add' && change.template !== undefined) {
        assert.deepEqual(change.template, found.get(change.faissId), 'the change log yields the same bytes');
      }
    }
  }
  return found;
}

const SUBJECTS = ['alice', 'bob', 'carol', 'dave', '😀 emoji', 'x|y:z'];

for (const [name, makeStore] of [
  ['SqliteTemplateStore', (dir: string) => sqliteUnderTest(dir)],
  ['RedisTemplateStore', () => redisUnderTest()],
] as const) {
  describe(`${name} with template encryption`, () => {
    it('round-trips sealed templates through reads, scans and the change log, never in the clear at rest', async () => {
      await withTempDir(async (dir) => {
        const subject = makeStore(dir);
        const cipher = ring(K1);
        const store = await subject.open(cipher);
        const { templates, ids } = await enrolAll(store, SUBJECTS, 3);
        for (const [subjectId, template] of templates) assert.deepEqual(await readBack(store, subjectId), template);
        const scanned = await scannedTemplates(store);
        for (const [subjectId, id] of ids) assert.deepEqual(scanned.get(id), templates.get(subjectId));
        assert.equal(
          await store.getSetting(ENCRYPTION_SETTING),
          'required',
          'a store born encrypted refuses plaintext',
        );
        await store.close();
        assertNoPlaintext(await subject.persisted(), [...templates.values()]);
        for (const bytes of (await subject.rows('p')).values()) assert.equal(cipher.keyIdOf(bytes), 'k1');
        assert.equal(cipher.health().healthy, true);
      });
    });

    it('refuses tampered rows and rows copied to another subject, with a typed error', async () => {
      await withTempDir(async (dir) => {
        const subject = makeStore(dir);
        const cipher = ring(K1);
        const store = await subject.open(cipher);
        const { templates, ids } = await enrolAll(store, SUBJECTS, 4);
        const rows = await subject.rows('p');

        // The attacker's own template, copied over the victim's.
        await subject.overwrite('p', ids.get('bob')!, rows.get(ids.get('alice')!)!);
        await assert.rejects(store.getSubjectTemplates('p', 'bob'), decryptionFailure('authentication-failed'));
        assert.deepEqual(await readBack(store, 'alice'), templates.get('alice'));

        const flipped = Buffer.from(rows.get(ids.get('carol')!)!);
        flipped[flipped.length - 40] = flipped[flipped.length - 40]! ^ 0x04;
        await subject.overwrite('p', ids.get('carol')!, flipped);
        await assert.rejects(store.getSubjectTemplates('p', 'carol'), decryptionFailure('authentication-failed'));

        // A plaintext row injected into a store born encrypted is refused too.
        await subject.overwrite('p', ids.get('dave')!, bytesOf(randomUnitVector(seededRandom(99))));
        await assert.rejects(store.getSubjectTemplates('p', 'dave'), decryptionFailure('plaintext-refused'));
        const scan = await store.openShardScan('p', shardOf('bob', 2), MODEL);
        await assert.rejects(async () => {
          while ((await scan.next()) !== undefined);
        }, TemplateDecryptionError);
        await scan.close();

        const health = cipher.health();
        assert.equal(health.healthy, false);
        assert.match(health.detail!, /authentication-failed|plaintext-refused/);
        await store.close();
      });
    });

    it('fails with a typed error under a wrong or a missing key, and refuses to open keyless', async () => {
      await withTempDir(async (dir) => {
        const subject = makeStore(dir);
        let store = await subject.open(ring(K1));
        await enrolAll(store, ['alice'], 5);
        await store.close();

        store = await subject.open(ring(key('k1')));
        await assert.rejects(store.getSubjectTemplates('p', 'alice'), decryptionFailure('authentication-failed'));
        await store.close();
        store = await subject.open(ring(K2));
        await assert.rejects(store.getSubjectTemplates('p', 'alice'), decryptionFailure('unknown-key'));
        await store.close();
        await assert.rejects(subject.open(undefined), /holds encrypted templates only/);
      });
    });

    it('reads legacy plaintext rows, and a rekey seals them all and then refuses plaintext', async () => {
      await withTempDir(async (dir) => {
        const subject = makeStore(dir);
        let store = await subject.open(undefined);
        const legacy = await enrolAll(store, SUBJECTS.slice(0, 4), 6);
        await store.removeSubject('p', 'dave');
        await store.close();
        await subject.toPreEncryptionLayout('p');

        const cipher = ring(K1);
        store = await subject.open(cipher);
        for (const subjectId of ['alice', 'bob', 'carol']) {
          assert.deepEqual(await readBack(store, subjectId), legacy.templates.get(subjectId));
        }
        assert.match(cipher.health().detail!, /reads of legacy plaintext templates/);
        const fresh = await enrolAll(store, ['erin'], 7);
        assert.equal(cipher.keyIdOf((await subject.rows('p')).get(fresh.ids.get('erin')!)!), 'k1');
        assert.equal(await store.getSetting(ENCRYPTION_SETTING), undefined);

        let report = await store.resealTemplates({ batchSize: 2 });
        assert.equal(report.resealed, 3);
        assert.equal(report.failed, 0);
        for (const [subjectId, template] of legacy.templates) {
          if (subjectId !== 'dave') assert.deepEqual(await readBack(store, subjectId), template);
        }
        const scanned = await scannedTemplates(store);
        assert.deepEqual(scanned.get(legacy.ids.get('alice')!), legacy.templates.get('alice'));
        // A deleted subject's row lingers in Redis until its shard's change log is pruned,
        // without the subject it would be sealed to: the store stays open to plaintext till then.
        if (name === 'RedisTemplateStore') {
          assert.equal(report.awaitingPrune, 1);
          assert.equal(report.encryptedOnly, false);
          for (const shard of [0, 1]) await store.pruneChanges('p', shard, await store.currentSeq());
          report = await store.resealTemplates();
          assert.deepEqual(report, { examined: 4, resealed: 0, failed: 0, awaitingPrune: 0, encryptedOnly: true });
        }
        assert.equal(report.encryptedOnly, true);
        await store.close();
        // Deleted rows included: SQLite zeroes what it frees (secure_delete), Redis pruned them.
        assertNoPlaintext(await subject.persisted(), [...legacy.templates.values()]);
        for (const bytes of (await subject.rows('p')).values()) assert.equal(cipher.keyIdOf(bytes), 'k1');

        store = await subject.open(ring(K1));
        assert.equal(await store.getSetting(ENCRYPTION_SETTING), 'required');
        await subject.overwrite('p', legacy.ids.get('alice')!, bytesOf(legacy.templates.get('alice')!));
        await assert.rejects(store.getSubjectTemplates('p', 'alice'), decryptionFailure('plaintext-refused'));
        await store.close();
      });
    });

    it('rotates: old rows read with the old key in the ring, rekey moves all to the new key, the old key goes', async () => {
      await withTempDir(async (dir) => {
        const subject = makeStore(dir);
        let store = await subject.open(ring(K1));
        const old = await enrolAll(store, SUBJECTS.slice(0, 3), 8);
        await store.close();

        // Step 1: the new key first in the ring, the old one after it.
        const rotating = ring(K2, K1);
        store = await subject.open(rotating);
        for (const [subjectId, template] of old.templates) assert.deepEqual(await readBack(store, subjectId), template);
        const fresh = await enrolAll(store, ['dave'], 9);
        const keyIds = async () => [...(await subject.rows('p')).values()].map((bytes) => rotating.keyIdOf(bytes));
        assert.deepEqual((await keyIds()).sort(), ['k1', 'k1', 'k1', 'k2']);

        // Step 2: rekey.
        const report = await store.resealTemplates();
        assert.deepEqual(
          { resealed: report.resealed, failed: report.failed, encryptedOnly: report.encryptedOnly },
          { resealed: 3, failed: 0, encryptedOnly: true },
        );
        assert.deepEqual(await keyIds(), ['k2', 'k2', 'k2', 'k2']);
        assert.equal((await store.resealTemplates()).resealed, 0, 'a second rekey has nothing to do');
        await store.close();

        // Step 3: the old key removed.
        store = await subject.open(ring(K2));
        for (const [subjectId, template] of [...old.templates, ...fresh.templates]) {
          assert.deepEqual(await readBack(store, subjectId), template);
        }
        await store.close();
      });
    });
  });
}

describe('index snapshots with template encryption', () => {
  const open = (
    dataDir: string,
    cipher: TemplateCipher | undefined,
    extra: Partial<Parameters<typeof Gallery.open>[0]> = {},
  ) =>
    Gallery.open({
      dataDir,
      shardCount: 2,
      snapshotIntervalMs: 0,
      ...(cipher ? { templateCipher: cipher } : {}),
      ...extra,
    });

  async function snapshotFiles(dataDir: string) {
    const files: Array<{ path: string; manifest: { indexes: Array<{ keyId?: string }> } }> = [];
    for (const shardDir of await readdir(join(dataDir, 'snapshots', 'p'))) {
      const dir = join(dataDir, 'snapshots', 'p', shardDir);
      const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
      for (const name of await readdir(dir))
        if (name.endsWith('.faiss')) files.push({ path: join(dir, name), manifest });
    }
    return files;
  }

  async function enrolGallery(gallery: Gallery, count: number, seed: number): Promise<Float32Array[]> {
    const random = seededRandom(seed);
    const templates = Array.from({ length: count }, () => randomUnitVector(random));
    await Promise.all(templates.map((template, i) => gallery.enrol('p', `s${i}`, template, MODEL)));
    return templates;
  }

  async function assertFinds(gallery: Gallery, templates: Float32Array[]): Promise<void> {
    for (const [i, template] of templates.entries()) {
      assert.equal((await gallery.search('p', template, MODEL, 1, 0.9))[0]?.subjectId, `s${i}`);
    }
  }

  it('seals snapshot files, reloads them, and re-seals them under a new key after a rotation', async () => {
    await withTempDir(async (dataDir) => {
      let gallery = await open(dataDir, ring(K1));
      const templates = await enrolGallery(gallery, 60, 10);
      await gallery.close();
      const files = await snapshotFiles(dataDir);
      assert.equal(files.length, 2);
      for (const file of files) {
        assert.deepEqual(
          file.manifest.indexes.map((entry) => entry.keyId),
          ['k1'],
        );
        assertNoPlaintext(await readFile(file.path), templates);
      }
      assertNoPlaintext(await readFile(join(dataDir, 'gallery.sqlite')), templates);

      gallery = await open(dataDir, ring(K1));
      assert.ok(
        gallery.shardInfos().every((info) => info.recovery === 'snapshot'),
        "gallery.shardInfos().every((info) => info.recovery === 'snapshot')",
      );
      await assertFinds(gallery, templates);
      await gallery.close();

      // Rotation: loaded under the old key, re-sealed under the new one at the next snapshot.
      const rotating = ring(K2, K1);
      gallery = await open(dataDir, rotating);
      assert.ok(
        gallery.shardInfos().every((info) => info.recovery === 'snapshot'),
        "gallery.shardInfos().every((info) => info.recovery === 'snapshot')",
      );
      await gallery.close();
      for (const file of await snapshotFiles(dataDir)) {
        assert.deepEqual(
          file.manifest.indexes.map((entry) => entry.keyId),
          ['k2'],
        );
      }
      gallery = await open(dataDir, ring(K2, K1));
      assert.equal((await gallery['store'].resealTemplates()).encryptedOnly, true);
      await gallery.close();
      const onlyNew = ring(K2);
      gallery = await open(dataDir, onlyNew);
      assert.ok(
        gallery.shardInfos().every((info) => info.recovery === 'snapshot'),
        "gallery.shardInfos().every((info) => info.recovery === 'snapshot')",
      );
      await assertFinds(gallery, templates);
      assert.equal(onlyNew.health().healthy, true);
      await gallery.close();
    });
  });

  it('rebuilds a shard whose sealed snapshot was damaged, without counting it as a decryption failure', async () => {
    await withTempDir(async (dataDir) => {
      let gallery = await open(dataDir, ring(K1));
      const templates = await enrolGallery(gallery, 40, 13);
      await gallery.close();
      // One snapshot damaged in its envelope's header, the other in its body; both keep their size.
      const [inHeader, inBody] = await snapshotFiles(dataDir);
      for (const [file, position] of [
        [inHeader!.path, 4],
        [inBody!.path, 200],
      ] as const) {
        const bytes = await readFile(file);
        bytes[position] = bytes[position]! ^ 0x5a;
        await writeFile(file, bytes);
      }
      const cipher = ring(K1);
      gallery = await open(dataDir, cipher);
      assert.deepEqual(
        gallery.shardInfos().map((info) => info.recovery),
        ['rebuild', 'rebuild'],
      );
      await assertFinds(gallery, templates);
      assert.equal(cipher.health().healthy, true, 'damage is not a key problem');
      await gallery.close();
    });
  });

  it('rebuilds instead of loading a snapshot under a removed key, or a plain one', async () => {
    await withTempDir(async (dataDir) => {
      // Written without keys: plain store rows and a plain snapshot.
      let gallery = await open(dataDir, undefined);
      const templates = await enrolGallery(gallery, 40, 11);
      await gallery.close();
      const plainSnapshot = (await snapshotFiles(dataDir))[0]!.path;

      gallery = await open(dataDir, ring(K1));
      assert.ok(
        gallery.shardInfos().every((info) => info.recovery === 'rebuild'),
        "gallery.shardInfos().every((info) => info.recovery === 'rebuild')",
      );
      assert.equal(existsSync(plainSnapshot), false, 'the plain snapshot is deleted');
      await assertFinds(gallery, templates);
      await gallery['store'].resealTemplates();
      await gallery.close();

      // k1 removed before the rekey: the partition is not served (typed errors), the process
      // runs on, and health says why.
      const withoutK1 = ring(K2);
      gallery = await open(dataDir, withoutK1);
      await assert.rejects(gallery.search('p', templates[0]!, MODEL, 1, 0.5), decryptionFailure('unknown-key'));
      assert.equal(gallery.health().healthy, false);
      assert.match(gallery.health().detail!, /not served: p: .*'k1'/);
      assert.equal(gallery.templateEncryptionHealth().healthy, false);
      assert.match(gallery.templateEncryptionHealth().detail!, /unknown-key/);
      await gallery.close();

      // Rekeyed first, only the snapshot still needs k1: it is rebuilt from the store.
      const store = await SqliteTemplateStore.open({
        path: join(dataDir, 'gallery.sqlite'),
        dimension: DIMENSION,
        cipher: ring(K2, K1),
      });
      await store.resealTemplates();
      await store.close();
      const fresh = ring(K2);
      gallery = await open(dataDir, fresh);
      assert.ok(
        gallery.shardInfos().every((info) => info.recovery === 'rebuild'),
        "gallery.shardInfos().every((info) => info.recovery === 'rebuild')",
      );
      await assertFinds(gallery, templates);
      assert.equal(fresh.health().healthy, true, 'an unreadable snapshot is rebuilt, not an alarm');
      await gallery.close();
    });
  });
});

describe('templates in shard ops (distributed mode)', () => {
  const template = randomUnitVector(seededRandom(12));
  const op = { op: 'enrol', partition: 'p', subjectId: 'alice', modelId: MODEL, template } as const;

  it('travel sealed to their job when the sender has keys, plain otherwise', () => {
    const cipher = ring(K1);
    const sealed = encodeShardOp(op, 'job-1', cipher);
    assert.equal(sealed['template'], undefined);
    assert.equal(
      Buffer.from(String(sealed['sealedTemplate']), 'base64').indexOf(bytesOf(template).subarray(0, 16)),
      -1,
    );
    assert.deepEqual(decodeShardOp(sealed, 'job-1', ring(K2, K1)), op);
    assert.throws(() => decodeShardOp(sealed, 'job-2', cipher), decryptionFailure('authentication-failed'));
    assert.throws(() => decodeShardOp({ ...sealed, subjectId: 'bob' }, 'job-1', cipher), TemplateDecryptionError);
    assert.throws(() => decodeShardOp(sealed, 'job-1', undefined), decryptionFailure('encryption-disabled'));
    assert.deepEqual(decodeShardOp(encodeShardOp(op, 'job-3', undefined), 'job-3', cipher), op);
  });
});

describe('npm run rekey', () => {
  it('re-seals an embedded data directory under the active key, beside the running service', async () => {
    await withTempDir(async (dataDir) => {
      const galleryDir = join(dataDir, 'gallery');
      const openGallery = (cipher: TemplateCipher) =>
        Gallery.open({ dataDir: galleryDir, shardCount: 2, snapshotIntervalMs: 0, templateCipher: cipher });
      let gallery = await openGallery(ring(K1));
      const random = seededRandom(13);
      const templates = Array.from({ length: 40 }, () => randomUnitVector(random));
      await Promise.all(templates.slice(0, 20).map((template, i) => gallery.enrol('p', `s${i}`, template, MODEL)));
      await gallery.close();

      // Restarted with the new key first; the rekey runs while enrols and deletes go on.
      gallery = await openGallery(ring(K2, K1));
      const { logger, lines } = logCollector();
      const env = readWorkerEnv({ DATA_DIR: dataDir, TEMPLATE_KEYS: keysVariable(K2, K1) });
      const [report] = await Promise.all([
        rekey(env, logger),
        Promise.all(templates.slice(20).map((template, i) => gallery.enrol('p', `s${20 + i}`, template, MODEL))),
        gallery.delete('p', 's0'),
      ]);
      assert.equal(report.failed, 0);
      assert.equal(report.encryptedOnly, true);
      assert.ok(
        lines.some((line) => /index snapshots not yet sealed under the active key/.test(line) && /k1/.test(line)),
        'lines.some((line) => /index snapshots not yet sealed under the active key/.test(line) && /k1/.test(line))',
      );
      assert.ok(
        !lines.join('\n').includes(Buffer.from(K2.secret).toString('base64')),
        "!lines.join('\\n').includes(Buffer.from(K2.secret).toString('base64'))",
      );
      await gallery.close();

      // The old key removed: the snapshots were re-sealed at close, the rows by the rekey.
      gallery = await openGallery(ring(K2));
      assert.ok(
        gallery.shardInfos().every((info) => info.recovery === 'snapshot'),
        "gallery.shardInfos().every((info) => info.recovery === 'snapshot')",
      );
      for (const [i, template] of templates.entries()) {
        if (i === 0) continue;
        assert.equal((await gallery.verify('p', `s${i}`, template, MODEL)) > 0.99, true);
        assert.equal((await gallery.search('p', template, MODEL, 1, 0.9))[0]?.subjectId, `s${i}`);
      }
      await gallery.close();
      await assert.rejects(
        rekey(readWorkerEnv({ DATA_DIR: join(dataDir, 'elsewhere'), TEMPLATE_KEYS: keysVariable(K2) }), silentLogger),
        /no gallery store/,
      );
    });
  });

  it('with --vacuum, also purges plaintext that SQLite left in free pages before encryption', async () => {
    await withTempDir(async (dataDir) => {
      const path = join(dataDir, 'gallery', 'gallery.sqlite');
      await mkdir(join(dataDir, 'gallery'));
      const store = await SqliteTemplateStore.open({ path, dimension: DIMENSION });
      const { templates } = await enrolAll(store, ['kept', 'deleted-long-ago'], 15);
      await store.close();
      // As a pre-encryption release deleted: freed space kept its bytes.
      const db = new Database(path);
      db.pragma('secure_delete = OFF');
      db.prepare("DELETE FROM templates WHERE subject_id = 'deleted-long-ago'").run();
      db.close();
      const deleted = bytesOf(templates.get('deleted-long-ago')!).subarray(0, 32);
      assert.notEqual((await readFile(path)).indexOf(deleted), -1, 'the premise: deleted bytes linger');

      const env = readWorkerEnv({ DATA_DIR: dataDir, TEMPLATE_KEYS: keysVariable(K1) });
      const { logger, lines } = logCollector();
      assert.equal((await rekey(env, logger, { vacuum: true })).encryptedOnly, true);
      assert.ok(
        lines.some((line) => /rewritten with its live content only/.test(line)),
        'lines.some((line) => /rewritten with its live content only/.test(line))',
      );
      assertNoPlaintext(await readFile(path), [...templates.values()]);
    });
  });

  it('re-seals a Redis prefix, beside a running shard', async () => {
    const prefix = testPrefix();
    redisPrefixes.push(prefix);
    await withTempDir(async (dir) => {
      const store = await RedisTemplateStore.open({
        redisUrl: SHARED_REDIS_URL,
        prefix,
        dimension: DIMENSION,
        cipher: ring(K2, K1),
      });
      const writer = await RedisTemplateStore.open({
        redisUrl: SHARED_REDIS_URL,
        prefix,
        dimension: DIMENSION,
        cipher: ring(K1),
      });
      const shard = await Shard.open({
        ...(await exactShardOptions(store, dir, { partition: 'p', shard: 0, shardCount: 1 })),
        cipher: ring(K2, K1),
      });
      const random = seededRandom(14);
      const templates = Array.from({ length: 30 }, () => randomUnitVector(random));
      await Promise.all(
        templates
          .slice(0, 20)
          .map((template, i) =>
            writer.addSubject({ partition: 'p', shard: 0, subjectId: `s${i}`, modelId: MODEL, template }),
          ),
      );
      const env = readWorkerEnv({
        REDIS_URL: SHARED_REDIS_URL,
        QUEUE_PREFIX: prefix,
        DATA_DIR: dir,
        TEMPLATE_KEYS: keysVariable(K2, K1),
      });
      // Enrols keep coming while the rekey runs.
      const [report] = await Promise.all([
        rekey(env, silentLogger),
        Promise.all(templates.slice(20).map((template, i) => shard.enrol(`s${20 + i}`, MODEL, template))),
      ]);
      assert.equal(report.failed, 0);
      assert.equal(report.encryptedOnly, true);
      await shard.close({ snapshot: false });
      await writer.close();
      await store.close();

      const onlyNew = await RedisTemplateStore.open({
        redisUrl: SHARED_REDIS_URL,
        prefix,
        dimension: DIMENSION,
        cipher: ring(K2),
      });
      for (const [i, template] of templates.entries()) {
        assert.deepEqual((await onlyNew.getSubjectTemplates('p', `s${i}`))[0]?.template, template);
      }
      await onlyNew.close();
    });
  });
});
