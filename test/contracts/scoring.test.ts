import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clampCosine, isMatch, reportedScore, roundToReportedDecimals } from '@facegate/contracts';

describe('scoring', () => {
  it('clamps a cosine to [0, 1] and reports it with three decimals', () => {
    assert.equal(clampCosine(-0.2), 0);
    assert.equal(clampCosine(Number.NaN), 0);
    assert.equal(clampCosine(1.0000001), 1);
    assert.equal(reportedScore(0.82349), 0.823);
    assert.equal(reportedScore(-0.1), 0);
    assert.equal(roundToReportedDecimals(0.8705), 0.871);
  });

  it('matches on the reported score: raw 0.4497 and 0.4503 both report 0.450 and match 0.45', () => {
    assert.equal(reportedScore(0.4497), 0.45);
    assert.equal(reportedScore(0.4503), 0.45);
    assert.equal(isMatch(0.4497, 0.45), true);
    assert.equal(isMatch(0.4503, 0.45), true);
    assert.equal(isMatch(0.4494, 0.45), false);
    assert.equal(isMatch(0.4497, 0.4501), false);
  });
});
