import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resolveMatchThreshold, type CalibrationTable } from '@facegate/contracts';
import { getJson, postBiometric } from '../support/http.js';
import { fixture } from '../support/paths.js';
import { readImage, startEmbeddedService, type RunningService } from '../support/service.js';

const personA = readImage(fixture('frll', '001_neutral.jpg'));
const personAOther = readImage(fixture('frll', '001_smiling.jpg'));
const personC = readImage(fixture('frll', '025_neutral.jpg'));

describe('calibrated decisions through the REST API (embedded mode, real models)', () => {
  let service: RunningService;
  let modelId: string;
  let table: CalibrationTable;

  before(async () => {
    service = await startEmbeddedService();
    const enrol = await postBiometric(service.baseUrl, 'enrol', personA, { subject_id: 'person-001' });
    assert.equal(enrol.status, 200, enrol.xml);
    modelId = enrol.text('model_id')!;
  });
  after(async () => {
    await service?.close();
  });

  it("serves the calibration of the service's model", async () => {
    const { status, body } = await getJson(service.baseUrl, '/api/v1/calibration');
    assert.equal(status, 200);
    const calibrations = body['calibrations'] as Record<string, CalibrationTable>;
    assert.deepEqual(Object.keys(calibrations), [modelId]);
    table = calibrations[modelId]!;
    assert.equal(table.thresholds.length, 101);
  });

  it('decides verify and search at the threshold a target_fmr resolves to', async () => {
    const scoreOf = async (image: Uint8Array): Promise<number> => {
      const reply = await postBiometric(service.baseUrl, 'verify', image, { subject_id: 'person-001' });
      return Number(reply.text('score'));
    };
    const probes = [
      { image: personAOther, score: await scoreOf(personAOther) },
      { image: personC, score: await scoreOf(personC) },
    ];
    // Targets from the table itself: a loose one (the FMR bound at 0.10), the bound at 0.45, the strictest.
    const bounds = table.thresholds.map((point) => point.fmr_high);
    const targets = [bounds[10]!, bounds[45]!, Math.min(...bounds)];
    for (const target of targets) {
      const threshold = resolveMatchThreshold({ targetFmr: target }, modelId, table);
      for (const { image, score } of probes) {
        const verify = await postBiometric(service.baseUrl, 'verify', image, {
          subject_id: 'person-001',
          target_fmr: target,
        });
        assert.equal(verify.status, 200, verify.xml);
        assert.equal(verify.text('match'), String(score >= threshold), `target ${target} -> ${threshold}`);
      }
    }
    assert.equal(resolveMatchThreshold({ targetFmr: bounds[45]! }, modelId, table) <= 0.45, true);

    const strict = resolveMatchThreshold({ targetFmr: 0.001 }, modelId, table);
    const search = await postBiometric(service.baseUrl, 'search', personAOther, { target_fmr: 0.001 });
    assert.equal(search.status, 200, search.xml);
    assert.deepEqual(search.all('subject_id'), probes[0]!.score >= strict ? ['person-001'] : []);
  });

  it('refuses both criteria at once, and a target the calibration cannot support', async () => {
    const both = await postBiometric(service.baseUrl, 'verify', personAOther, {
      subject_id: 'person-001',
      threshold: 0.5,
      target_fmr: 0.001,
    });
    assert.equal(both.status, 400);
    assert.equal(both.text('status'), 'INVALID_REQUEST');
    const tooStrict = await postBiometric(service.baseUrl, 'search', personAOther, { target_fmr: 1e-9 });
    assert.equal(tooStrict.status, 400);
    assert.equal(tooStrict.text('status'), 'INVALID_REQUEST');
    assert.match(tooStrict.text('message') ?? '', /below what the calibration/);
  });
});
