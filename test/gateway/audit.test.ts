import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TemplateCipher } from '@facegate/gallery';
import { AuditKeys, AuditLog, verifyAuditLog, type AuditEvent } from '@facegate/gateway';
import { silentLogger } from '@facegate/observability';
import { auditTool, temporaryDirectory } from '../support/service.js';

const key = (id: string) => ({ id, secret: randomBytes(32) });
const ring = (...keys: Array<ReturnType<typeof key>>) => new AuditKeys(new TemplateCipher(keys));
const entry = (subjectId: string, outcome = 'OK'): AuditEvent => ({
  operation: 'enrol',
  keyId: 'frontdesk',
  partition: 'default',
  subjectId,
  outcome,
});

async function writeLog(file: string, keys: AuditKeys, subjects: string[]): Promise<void> {
  const log = await AuditLog.open(file, keys, silentLogger);
  for (const subject of subjects) await log.record(entry(subject));
}

const lines = (file: string): string[] => readFileSync(file, 'utf8').trimEnd().split('\n');
const rewrite = (file: string, edited: string[]): void => writeFileSync(file, `${edited.join('\n')}\n`);

describe('audit log: pseudonyms and hash chain', () => {
  const k1 = key('k1');
  const k2 = key('k2');

  it('names subjects by keyed pseudonym only, stable across restarts and different under another key', async () => {
    const file = path.join(temporaryDirectory('audit'), 'audit.log');
    await writeLog(file, ring(k1), ['person-001']);
    await writeLog(file, ring(k1), ['person-001']); // a restart: a new AuditLog on the same file
    const [first, second] = lines(file).map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.ok(!readFileSync(file, 'utf8').includes('person-001'), "!readFileSync(file, 'utf8').includes('person-001')");
    assert.match(String(first!['subject']), /^[0-9a-f]{32}$/);
    assert.equal(first!['subject'], second!['subject']);
    assert.equal(first!['auditKey'], 'k1');
    assert.equal(first!['subject'], ring(k1).pseudonym('person-001', 'k1'));
    assert.notEqual(ring(k2).pseudonym('person-001', 'k2'), first!['subject']);
    assert.notEqual(ring(k1).pseudonym('person-002', 'k1'), first!['subject']);
    // The chain carried over the restart.
    assert.equal((await verifyAuditLog(file, ring(k1))).ok, true);
    assert.equal(second!['prev'], first!['hash']);
  });

  it('passes a clean log, and fails a changed, deleted or reordered line at the first bad line', async () => {
    const file = path.join(temporaryDirectory('audit'), 'audit.log');
    const keys = ring(k1);
    await writeLog(file, keys, ['a', 'b', 'c', 'd', 'e']);
    const clean = lines(file);
    assert.deepEqual(await verifyAuditLog(file, keys), { ok: true, lines: 5, unchainedLines: [] });

    const cases: Array<[string, string[], number]> = [
      ['changed outcome', clean.map((line, i) => (i === 2 ? line.replace('"OK"', '"NO_FACE"') : line)), 3],
      ['changed last line', clean.map((line, i) => (i === 4 ? line.replace('frontdesk', 'someone') : line)), 5],
      ['deleted line', clean.filter((_, i) => i !== 1), 2],
      ['deleted first line', clean.slice(1), 1],
      ['reordered lines', [clean[0]!, clean[2]!, clean[1]!, clean[3]!, clean[4]!], 2],
      ['line inserted by hand', [...clean.slice(0, 2), '{"operation":"delete"}', ...clean.slice(2)], 4],
    ];
    for (const [what, edited, badLine] of cases) {
      rewrite(file, edited);
      const result = await verifyAuditLog(file, keys);
      assert.equal(result.ok, false, what);
      assert.equal(result.firstBadLine, badLine, `${what}: ${result.reason}`);
    }
    // A forger who recomputes the chain needs the key: another ring's hash does not verify.
    rewrite(file, clean);
    const forged = path.join(temporaryDirectory('audit'), 'audit.log');
    await writeLog(forged, ring(key('k1')), ['a', 'b']);
    const result = await verifyAuditLog(forged, keys);
    assert.equal(result.ok, false);
    assert.equal(result.firstBadLine, 1);
  });

  it('keeps verifying across a key rotation, with both keys in the ring', async () => {
    const file = path.join(temporaryDirectory('audit'), 'audit.log');
    await writeLog(file, ring(k1), ['a', 'b']);
    await writeLog(file, ring(k2, k1), ['c']);
    assert.equal((await verifyAuditLog(file, ring(k2, k1))).ok, true);
    const withoutOld = await verifyAuditLog(file, ring(k2));
    assert.equal(withoutOld.firstBadLine, 1);
    assert.match(withoutOld.reason ?? '', /not in the key ring/);
  });

  it('flush() waits for every line recorded so far (a stopping service waits for it)', async () => {
    const file = path.join(temporaryDirectory('audit'), 'audit.log');
    const keys = ring(k1);
    const log = await AuditLog.open(file, keys, silentLogger);
    // As the gateway records: without waiting for the write.
    for (let i = 0; i < 50; i++) void log.record(entry(`subject-${i}`));
    await log.flush();
    assert.equal(lines(file).length, 50);
    assert.deepEqual(await verifyAuditLog(file, keys), { ok: true, lines: 50, unchainedLines: [] });
  });

  it('seals a line without a subject (a partition erased) under the key it names', async () => {
    const file = path.join(temporaryDirectory('audit'), 'audit.log');
    const keys = ring(k1);
    const log = await AuditLog.open(file, keys, silentLogger);
    await log.record(entry('a'));
    const erased: AuditEvent = {
      operation: 'delete_partition',
      keyId: 'ops',
      partition: 'doomed',
      outcome: 'OK',
      subjects: 3,
      templates: 4,
    };
    await log.record(erased);
    await log.record(entry('b'));
    const clean = lines(file);
    assert.equal((JSON.parse(clean[1]!) as Record<string, unknown>)['auditKey'], 'k1');
    assert.deepEqual(await verifyAuditLog(file, keys), { ok: true, lines: 3, unchainedLines: [] });
    rewrite(
      file,
      clean.map((line, i) => (i === 1 ? line.replace('"subjects":3', '"subjects":2') : line)),
    );
    assert.equal((await verifyAuditLog(file, keys)).firstBadLine, 2);

    // Written before the line named its key: sealed under the ring's active key all the same, and still verified.
    const earlier = path.join(temporaryDirectory('audit'), 'audit.log');
    const earlierLog = await AuditLog.open(earlier, keys, silentLogger);
    await earlierLog.record(entry('a'));
    await earlierLog.record(erased);
    const [first, second] = lines(earlier);
    const { hash: _hash, auditKey: _auditKey, ...unnamed } = JSON.parse(second!) as Record<string, unknown>;
    const sealed = keys.lineHash(JSON.stringify(unnamed), 'k1');
    rewrite(earlier, [first!, JSON.stringify({ ...unnamed, hash: sealed })]);
    assert.equal((await verifyAuditLog(earlier, keys)).ok, true);
    assert.equal((await verifyAuditLog(earlier, ring(k2))).ok, false);
  });

  it('`npm run audit` verifies (exit 1 and the line on tampering) and looks subjects up', () => {
    const dir = temporaryDirectory('audit-cli');
    const file = path.join(dir, 'audit.log');
    const entry1 = `k1:${k1.secret.toString('base64')}`;
    const cli = (...args: string[]) => auditTool(args, { DATA_DIR: dir, TEMPLATE_KEYS: entry1 });
    return (async () => {
      await writeLog(file, ring(k1), ['a', 'person-001', 'c']);
      const clean = cli('verify');
      assert.equal(clean.status, 0, clean.stdout + clean.stderr);
      const lookup = cli('lookup', 'person-001');
      assert.equal(lookup.status, 0, lookup.stderr);
      const pseudonym = lookup.stdout.trim().split('\t')[1]!;
      assert.equal(lines(file).filter((line) => line.includes(pseudonym)).length, 1);
      rewrite(
        file,
        lines(file).map((line, i) => (i === 1 ? line.replace('"OK"', '"FORBIDDEN"') : line)),
      );
      const tampered = cli('verify', file);
      assert.equal(tampered.status, 1);
      assert.match(tampered.stdout, /line 2:/);
    })();
  });
});
