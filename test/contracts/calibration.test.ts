import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  DEFAULT_MATCH_THRESHOLD,
  FacegateError,
  parseCalibrationTable,
  parseMetadata,
  resolveMatchThreshold,
  type CalibrationTable,
} from '@facegate/contracts';
import { repoRoot } from '../support/paths.js';

function invalid(run: () => unknown, message?: RegExp): void {
  assert.throws(
    run,
    (error: unknown) =>
      error instanceof FacegateError && error.code === 'INVALID_REQUEST' && (!message || message.test(error.message)),
  );
}

/** A small table of pure numbers: FMR upper bound falls with the threshold, then stays at 0.001. */
const TABLE: CalibrationTable = {
  model_id: 'model-a',
  pack: 'test',
  created: '2026-12-04',
  command: 'test',
  data: { sets: ['x'], images: 10, identities: 5, genuine_pairs: 5, impostor_pairs: 40, sha256: '0' },
  method: 'test',
  confidence: 0.95,
  thresholds: [0.3, 0.4, 0.5, 0.6].map((threshold, index) => {
    const fmr = [0.1, 0.01, 0, 0][index]!;
    const high = [0.2, 0.02, 0.001, 0.001][index]!;
    return { threshold, fmr, fmr_low: 0, fmr_high: high, fnmr: 0.1, fnmr_low: 0, fnmr_high: 0.2 };
  }),
};

describe('target_fmr', () => {
  it('is accepted instead of threshold, never with it', () => {
    assert.deepEqual(parseMetadata('verify', '{"subject_id":"a","target_fmr":0.001}'), {
      subject_id: 'a',
      partition: 'default',
      target_fmr: 0.001,
    });
    invalid(() => parseMetadata('search', '{"threshold":0.5,"target_fmr":0.001}'), /either threshold or target_fmr/);
    invalid(() => parseMetadata('verify', '{"subject_id":"a","threshold":0.5,"target_fmr":0.001}'));
    invalid(() => parseMetadata('search', '{"target_fmr":0}'));
    invalid(() => parseMetadata('search', '{"target_fmr":1.5}'));
    invalid(() => parseMetadata('search', '{"target_fmr":"0.01"}'));
  });

  it('resolves to the smallest threshold whose FMR upper bound is at most the target', () => {
    assert.equal(resolveMatchThreshold({ targetFmr: 0.05 }, 'model-a', TABLE), 0.4);
    assert.equal(resolveMatchThreshold({ targetFmr: 0.02 }, 'model-a', TABLE), 0.4);
    assert.equal(resolveMatchThreshold({ targetFmr: 0.0015 }, 'model-a', TABLE), 0.5);
    assert.equal(resolveMatchThreshold({ targetFmr: 1 }, 'model-a', TABLE), 0.3);
    assert.equal(resolveMatchThreshold({ threshold: 0.37 }, 'model-a', TABLE), 0.37);
    assert.equal(resolveMatchThreshold({}, 'model-a', undefined), DEFAULT_MATCH_THRESHOLD);
  });

  it('refuses a target the table cannot support, a model without calibration, and both criteria', () => {
    invalid(() => resolveMatchThreshold({ targetFmr: 0.0001 }, 'model-a', TABLE), /below what the calibration/);
    invalid(() => resolveMatchThreshold({ targetFmr: 0.01 }, 'model-b', TABLE), /model-b/);
    invalid(() => resolveMatchThreshold({ targetFmr: 0.01 }, 'model-a', undefined));
    invalid(() => resolveMatchThreshold({ targetFmr: 0.01, threshold: 0.5 }, 'model-a', TABLE));
  });
});

describe("the default pack's calibration file", () => {
  const table = parseCalibrationTable(
    readFileSync(path.join(repoRoot, 'models', 'default', 'calibration.json'), 'utf8'),
  );

  it('covers 0.00-1.00 in steps of 0.01 with bounds around each rate', () => {
    assert.equal(table.thresholds.length, 101);
    table.thresholds.forEach((point, index) => {
      assert.equal(point.threshold, index / 100);
      assert.ok(point.fmr_low <= point.fmr && point.fmr <= point.fmr_high, `FMR bounds at ${point.threshold}`);
      assert.ok(point.fnmr_low <= point.fnmr && point.fnmr <= point.fnmr_high, `FNMR bounds at ${point.threshold}`);
    });
    for (let index = 1; index < table.thresholds.length; index++) {
      assert.ok(
        table.thresholds[index]!.fmr <= table.thresholds[index - 1]!.fmr,
        'table.thresholds[index]!.fmr <= table.thresholds[index - 1]!.fmr',
      );
      assert.ok(
        table.thresholds[index]!.fnmr >= table.thresholds[index - 1]!.fnmr,
        'table.thresholds[index]!.fnmr >= table.thresholds[index - 1]!.fnmr',
      );
    }
    assert.ok(
      table.data.impostor_pairs > 0 && table.data.genuine_pairs > 0 && table.data.sha256.length === 64,
      'table.data.impostor_pairs > 0 && table.data.genuine_pairs > 0 && table.data.sha256.length === 64',
    );
  });

  it('is refused when malformed', () => {
    assert.throws(() => parseCalibrationTable('{"model_id":"x"}'), /invalid calibration table/);
  });
});
