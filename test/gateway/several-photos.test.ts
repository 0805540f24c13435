import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getJson, postBiometric, postDelete } from '../support/http.js';
import { fixture } from '../support/paths.js';
import { readImage, startEmbeddedService, type RunningService } from '../support/service.js';

const neutral = readImage(fixture('frll', '001_neutral.jpg'));
const smiling = readImage(fixture('frll', '001_smiling.jpg'));
const other = readImage(fixture('frll', '005_neutral.jpg'));

describe('several photos per subject (embedded mode, real models)', () => {
  let service: RunningService;
  before(async () => {
    service = await startEmbeddedService({ MAX_TEMPLATES_PER_SUBJECT: '2' });
  });
  after(async () => {
    await service?.close();
  });

  it('appends a template with "append", scores by the best one, counts and deletes them all', async () => {
    assert.equal((await postBiometric(service.baseUrl, 'enrol', neutral, { subject_id: 'p1' })).status, 200);
    const duplicate = await postBiometric(service.baseUrl, 'enrol', smiling, { subject_id: 'p1' });
    assert.equal(duplicate.status, 409, duplicate.xml);
    const missing = await postBiometric(service.baseUrl, 'enrol', smiling, { subject_id: 'nobody', append: true });
    assert.equal(missing.text('status'), 'SUBJECT_NOT_FOUND', missing.xml);

    const before = Number(
      (await postBiometric(service.baseUrl, 'verify', smiling, { subject_id: 'p1', threshold: 0 })).text('score'),
    );
    const appended = await postBiometric(service.baseUrl, 'enrol', smiling, { subject_id: 'p1', append: true });
    assert.equal(appended.status, 200, appended.xml);
    const after = Number(
      (await postBiometric(service.baseUrl, 'verify', smiling, { subject_id: 'p1', threshold: 0 })).text('score'),
    );
    assert.ok(after > before && after > 0.99, `best template: ${before} -> ${after}`);

    const search = await postBiometric(service.baseUrl, 'search', smiling, { threshold: 0 });
    assert.deepEqual(search.all('subject_id'), ['p1'], 'one candidate per subject');

    const full = await postBiometric(service.baseUrl, 'enrol', other, { subject_id: 'p1', append: true });
    assert.equal(full.status, 400, full.xml);
    assert.match(full.text('message') ?? '', /MAX_TEMPLATES_PER_SUBJECT/);

    const stats = await getJson(service.baseUrl, '/api/v1/stats');
    assert.deepEqual(stats.body, {
      total_subjects: 1,
      partitions: { default: 1 },
      total_templates: 2,
      templates: { default: 2 },
    });
    assert.equal((await postDelete(service.baseUrl, { subject_id: 'p1' })).status, 200);
    const afterDelete = await postBiometric(service.baseUrl, 'search', smiling, { threshold: 0 });
    assert.deepEqual(afterDelete.all('subject_id'), []);
    assert.equal((await getJson(service.baseUrl, '/api/v1/stats')).body['total_templates'], 0);
  });
});
