import { existsSync, readFileSync } from 'node:fs';
import { appendFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { IMAGE_EXTENSIONS, type FacegateClient } from './client.js';

export interface EnrolItem {
  subjectId: string;
  file: string;
}

export type EnrolOutcome = 'enrolled' | 'skipped' | 'refused';

export interface EnrolDirSummary {
  total: number;
  enrolled: number;
  skipped: number;
  refused: number;
  refusalsByReason: Record<string, number>;
  report: string;
}

const isImage = (name: string): boolean => IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());

/**
 * Subjects of a folder: each sub-folder is one subject (its first photo, by name), and each
 * photo directly in the folder is one subject named after the file without its extension.
 */
export async function listSubjects(directory: string): Promise<EnrolItem[]> {
  const names = (await readdir(directory)).sort((a, b) => a.localeCompare(b));
  const items: EnrolItem[] = [];
  for (const name of names) {
    const full = path.join(directory, name);
    // stat, not the directory entry's type: symbolic links to folders and photos count too.
    const entry = await stat(full);
    if (entry.isDirectory()) {
      const photo = (await readdir(full)).filter(isImage).sort()[0];
      if (photo) items.push({ subjectId: name, file: path.join(full, photo) });
    } else if (entry.isFile() && isImage(name)) {
      items.push({ subjectId: path.basename(name, path.extname(name)), file: full });
    }
  }
  return items;
}

const REPORT_HEADER = 'subject_id,file,outcome,status,quality_score,message\n';

function csvField(value: unknown): string {
  const text = value === undefined || value === null ? '' : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Subjects an earlier run's report shows as done (enrolled, or found already there). */
function doneInReport(report: string): Set<string> {
  const done = new Set<string>();
  if (!existsSync(report)) return done;
  for (const line of readFileSync(report, 'utf8').split('\n').slice(1)) {
    const [subjectId, , outcome] = line.split(',');
    if (subjectId && (outcome === 'enrolled' || outcome === 'skipped')) done.add(subjectId);
  }
  return done;
}

export interface EnrolDirOptions {
  partition: string;
  report: string;
  concurrency: number;
  showProgress: boolean;
}

export async function enrolDirectory(
  client: FacegateClient,
  directory: string,
  options: EnrolDirOptions,
): Promise<EnrolDirSummary> {
  const items = await listSubjects(directory);
  const done = doneInReport(options.report);
  if (!existsSync(options.report)) await writeFile(options.report, REPORT_HEADER);
  const summary: EnrolDirSummary = {
    total: items.length,
    enrolled: 0,
    skipped: 0,
    refused: 0,
    refusalsByReason: {},
    report: options.report,
  };
  const bar = new cliProgress.SingleBar(
    {
      format: 'enrol {bar} {percentage}% | {value}/{total} | {rate}/s | ETA {eta_formatted} | refused {refused}',
      stream: process.stderr,
      noTTYOutput: true,
      notTTYSchedule: 1000,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  if (options.showProgress) bar.start(items.length, 0, { rate: '0.0', refused: 0 });

  const record = async (item: EnrolItem, outcome: EnrolOutcome, status: string, fields: Record<string, unknown>) => {
    summary[outcome] += 1;
    if (outcome === 'refused') summary.refusalsByReason[status] = (summary.refusalsByReason[status] ?? 0) + 1;
    if (outcome !== 'skipped' || !done.has(item.subjectId)) {
      const row = [item.subjectId, item.file, outcome, status, fields['quality_score'], fields['message']];
      await appendFile(options.report, row.map(csvField).join(',') + '\n');
    }
    if (options.showProgress) {
      const processed = summary.enrolled + summary.skipped + summary.refused;
      const rate = processed / Math.max((Date.now() - started) / 1000, 0.001);
      bar.update(processed, { rate: rate.toFixed(1), refused: summary.refused });
    }
  };

  let next = 0;
  const work = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      if (done.has(item.subjectId)) {
        await record(item, 'skipped', 'IN_REPORT', {});
        continue;
      }
      const reply = await client.enrol(item.file, item.subjectId, options.partition);
      if (reply.status === 'OK') await record(item, 'enrolled', 'OK', reply.body);
      else if (reply.status === 'SUBJECT_EXISTS') await record(item, 'skipped', reply.status, reply.body);
      else await record(item, 'refused', reply.status, reply.body);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, work));
  } finally {
    if (options.showProgress) bar.stop();
  }
  return summary;
}
