import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { EXIT } from '@facegate/cli';
import { fixture, repoRoot, sharedData } from '../support/paths.js';
import { startEmbeddedService, temporaryDirectory, type RunningService } from '../support/service.js';

const execFileAsync = promisify(execFile);

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

const SHARED_FRLL = sharedData('faces', 'frll');
const SHARED_SUBJECTS = 12;

/**
 * A folder to enrol: a dozen FRLL people from ../shared/data when present (one sub-folder per
 * person), else the committed FRLL fixtures (one file per person); plus a group photo that
 * enrolment refuses (MULTIPLE_FACES).
 */
function photoFolder(root: string): { directory: string; people: number; source: string } {
  const directory = path.join(root, 'photos');
  mkdirSync(directory);
  copyFileSync(fixture('frll', 'two_faces.jpg'), path.join(directory, 'group.jpg'));
  if (existsSync(SHARED_FRLL)) {
    const people = readdirSync(SHARED_FRLL).sort().slice(0, SHARED_SUBJECTS);
    for (const person of people) symlinkSync(path.join(SHARED_FRLL, person), path.join(directory, person));
    return { directory, people: people.length, source: SHARED_FRLL };
  }
  for (const name of ['001_neutral.jpg', '005_neutral.jpg', '025_neutral.jpg']) {
    copyFileSync(fixture('frll', name), path.join(directory, name));
  }
  return { directory, people: 3, source: 'test/fixtures/frll' };
}

describe('facegate CLI against the running service', () => {
  let service: RunningService;
  let workDir: string;
  let photos: { directory: string; people: number; source: string };

  async function cli(...args: string[]): Promise<CliRun> {
    const command = [
      '--conditions=development',
      // Resolved here: the CLI runs in a temporary folder, where `tsx` alone would not resolve.
      '--import',
      import.meta.resolve('tsx'),
      path.join(repoRoot, 'apps/cli/src/main.ts'),
      '--url',
      service.baseUrl,
      ...args,
    ];
    try {
      const { stdout, stderr } = await execFileAsync(process.execPath, command, { cwd: workDir });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  before(async () => {
    service = await startEmbeddedService();
    workDir = temporaryDirectory('cli');
    photos = photoFolder(workDir);
  });
  after(async () => {
    await service?.close();
    rmSync(workDir, { recursive: true, force: true });
  });

  /** Subjects the first run enrolled, from its report (real photos: a few may be refused). */
  let enrolled: string[] = [];

  it('enrols a folder with a progress bar, a refusal summary and a CSV report', async () => {
    const run = await cli('enrol-dir', photos.directory, '--partition', 'people');
    assert.equal(run.code, EXIT.REFUSED, `the group photo is refused (photos from ${photos.source})\n${run.stderr}`);
    assert.match(run.stderr, /enrol .*\| \d+\/\d+ \| [\d.]+\/s \| ETA /, 'progress bar with rate and ETA');
    const counts = /(\d+) subject\(s\): (\d+) enrolled, 0 skipped .*, (\d+) refused/.exec(run.stdout);
    assert.ok(counts, run.stdout);
    const [total, done, refused] = counts.slice(1).map(Number) as [number, number, number];
    assert.equal(total, photos.people + 1);
    assert.equal(done + refused, total);
    assert.ok(done >= photos.people - 2, `most people are enrolled:\n${run.stdout}`);
    assert.match(run.stdout, /refusals by reason:\n(.*\n)* {2}MULTIPLE_FACES: 1\n/);
    const report = readFileSync(path.join(workDir, 'facegate-enrol-people.csv'), 'utf8').trim().split('\n');
    assert.equal(report[0], 'subject_id,file,outcome,status,quality_score,message');
    assert.equal(report.length, total + 1);
    assert.ok(
      report.some((line) => line.startsWith('group,') && line.includes(',refused,MULTIPLE_FACES,')),
      "report.some((line) => line.startsWith('group,') && line.includes(',refused,MULTIPLE_FACES,'))",
    );
    enrolled = report.filter((line) => line.includes(',enrolled,OK,')).map((line) => line.split(',')[0]!);
    assert.equal(enrolled.length, done);
  });

  it('skips what is already enrolled on a second run, from the report or from the service', async () => {
    const resumed = await cli('enrol-dir', photos.directory, '--partition', 'people');
    assert.match(resumed.stdout, new RegExp(` 0 enrolled, ${enrolled.length} skipped`), resumed.stdout);
    // Without the report, the service's SUBJECT_EXISTS says the same.
    const fresh = await cli('--json', 'enrol-dir', photos.directory, '--partition', 'people', '--report', 'new.csv');
    const summary = JSON.parse(fresh.stdout) as { enrolled: number; skipped: number; refused: number };
    assert.deepEqual([summary.enrolled, summary.skipped], [0, enrolled.length]);
    const stats = JSON.parse((await cli('--json', 'stats')).stdout) as { partitions: Record<string, number> };
    assert.equal(stats.partitions['people'], enrolled.length);
  });

  it('searches, verifies and deletes, with an exit status per outcome', async () => {
    const [subject, other] = enrolled as [string, string];
    // Another photo of the first enrolled person: the smiling one.
    const probe = existsSync(SHARED_FRLL)
      ? path.join(SHARED_FRLL, subject, readdirSync(path.join(SHARED_FRLL, subject)).sort().at(-1)!)
      : fixture('frll', `${subject.slice(0, 3)}_smiling.jpg`);
    const search = await cli('search', probe, '--partition', 'people');
    assert.equal(search.code, EXIT.OK, search.stderr);
    assert.match(search.stdout, new RegExp(`^1\\. ${subject} score=0\\.\\d+`));

    const verify = await cli('--json', 'verify', probe, '--subject', subject, '--partition', 'people');
    assert.equal(verify.code, EXIT.OK);
    assert.equal((JSON.parse(verify.stdout) as { match: string }).match, 'true');
    const noMatch = await cli('verify', probe, '--subject', other, '--partition', 'people');
    assert.equal(noMatch.code, EXIT.NEGATIVE, noMatch.stdout);

    assert.equal((await cli('delete', '--subject', subject, '--partition', 'people')).code, EXIT.OK);
    const again = await cli('delete', '--subject', subject, '--partition', 'people');
    assert.equal(again.code, EXIT.NOT_FOUND);
    assert.match(again.stdout, /^SUBJECT_NOT_FOUND: /);
  });

  it('lists partitions and health, and refuses bad usage', async () => {
    const partitions = await cli('partitions');
    assert.equal(partitions.code, EXIT.OK);
    assert.match(partitions.stdout, /^people$/m);
    const health = await cli('health');
    assert.equal(health.code, EXIT.OK);
    assert.match(health.stdout, /^healthy\n/);
    assert.equal((await cli('verify', 'photo.jpg')).code, EXIT.USAGE, 'missing --subject');
    assert.equal((await cli('search', 'x.jpg', '--top-k', 'many')).code, EXIT.USAGE);
  });
});
