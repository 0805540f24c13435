#!/usr/bin/env node
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { FacegateClient, ServiceUnreachable, type Reply } from './client.js';
import { enrolDirectory } from './enrol-dir.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

interface GlobalOptions {
  url: string;
  apiKey?: string;
  json?: boolean;
}

const program = new Command('facegate')
  .description('Command-line client of the facegate face-biometrics service')
  .addOption(new Option('--url <url>', 'service base URL').env('FACEGATE_URL').default('http://127.0.0.1:8080'))
  .addOption(new Option('--api-key <key>', 'API key (header X-API-Key)').env('FACEGATE_API_KEY'))
  .option('--json', 'print machine-readable JSON instead of text')
  .exitOverride()
  .configureOutput({ writeErr: (text) => process.stderr.write(text) });

function globals(): GlobalOptions {
  return program.opts<GlobalOptions>();
}

function client(): FacegateClient {
  const { url, apiKey } = globals();
  return new FacegateClient(url, apiKey);
}

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError('must be a positive integer');
  return parsed;
}

function fraction(value: string): number {
  const parsed = Number(value);
  if (!(parsed >= 0 && parsed <= 1)) throw new InvalidArgumentError('must be a number in [0, 1]');
  return parsed;
}

function print(json: unknown, text: string): void {
  process.stdout.write(globals().json ? JSON.stringify(json, null, 2) + '\n' : text + '\n');
}

/** Prints a reply and sets the exit status for its outcome. */
function finish(reply: Reply, text: () => string, negative = false): void {
  print({ http: reply.http, ...reply.body, status: reply.status }, reply.status === 'OK' ? text() : refusalText(reply));
  process.exitCode = reply.status === 'OK' ? (negative ? EXIT.NEGATIVE : EXIT.OK) : exitCodeFor(reply.status);
}

function refusalText(reply: Reply): string {
  const scores = ['quality_score', 'pad_score', 'mad_score']
    .filter((name) => reply.body[name] !== undefined)
    .map((name) => ` ${name}=${String(reply.body[name])}`)
    .join('');
  return `${reply.status}: ${String(reply.body['message'] ?? `HTTP ${reply.http}`)}${scores}`;
}

const partitionOption = (): Option => new Option('-p, --partition <name>', 'partition').default('default');

program
  .command('enrol-dir')
  .description('enrol every subject of a folder (sub-folder or file name = subject id); resumable')
  .argument('<dir>', 'folder of photos')
  .addOption(partitionOption())
  .option('--report <file>', 'CSV report, also read to skip subjects done by an earlier run')
  .option('--concurrency <n>', 'requests in flight', integer, 2)
  .action(async (dir: string, options: { partition: string; report?: string; concurrency: number }) => {
    const report = options.report ?? `facegate-enrol-${options.partition}.csv`;
    const summary = await enrolDirectory(client(), path.resolve(dir), {
      partition: options.partition,
      report,
      concurrency: options.concurrency,
      showProgress: !globals().json,
    });
    const reasons = Object.entries(summary.refusalsByReason)
      .sort((a, b) => b[1] - a[1])
      .map(([reason, count]) => `  ${reason}: ${count}`);
    print(
      summary,
      [
        `${summary.total} subject(s): ${summary.enrolled} enrolled, ${summary.skipped} skipped (already enrolled), ` +
          `${summary.refused} refused`,
        ...(reasons.length ? ['refusals by reason:', ...reasons] : []),
        `report: ${summary.report}`,
      ].join('\n'),
    );
    process.exitCode = summary.refused > 0 ? EXIT.REFUSED : EXIT.OK;
  });

program
  .command('search')
  .description('search a partition for the face in a photo')
  .argument('<file>', 'photo')
  .addOption(partitionOption())
  .option('--top-k <n>', 'candidates at most', integer)
  .option('--threshold <t>', 'minimum score', fraction)
  .action(async (file: string, options: { partition: string; topK?: number; threshold?: number }) => {
    const reply = await client().search(file, {
      partition: options.partition,
      ...(options.topK === undefined ? {} : { top_k: options.topK }),
      ...(options.threshold === undefined ? {} : { threshold: options.threshold }),
    });
    const candidates = ((reply.body['candidates'] as { candidate?: Record<string, unknown>[] } | '') || {}).candidate;
    const list = candidates ?? [];
    finish(
      { ...reply, body: { ...reply.body, candidates: list } },
      () =>
        list.length
          ? list.map((c) => `${String(c['rank'])}. ${String(c['subject_id'])} score=${String(c['score'])}`).join('\n')
          : 'no candidate above the threshold',
      list.length === 0,
    );
  });

program
  .command('verify')
  .description('compare the face in a photo with one enrolled subject')
  .argument('<file>', 'photo')
  .requiredOption('-s, --subject <id>', 'subject id')
  .addOption(partitionOption())
  .option('--threshold <t>', 'minimum score for a match', fraction)
  .action(async (file: string, options: { subject: string; partition: string; threshold?: number }) => {
    const reply = await client().verify(file, {
      subject_id: options.subject,
      partition: options.partition,
      ...(options.threshold === undefined ? {} : { threshold: options.threshold }),
    });
    const match = reply.body['match'] === 'true';
    finish(reply, () => `${match ? 'match' : 'no match'} score=${String(reply.body['score'])}`, !match);
  });

program
  .command('delete')
  .description('delete one subject')
  .requiredOption('-s, --subject <id>', 'subject id')
  .addOption(partitionOption())
  .action(async (options: { subject: string; partition: string }) => {
    const reply = await client().delete(options.subject, options.partition);
    finish(reply, () => `deleted ${options.subject}`);
  });

program
  .command('partitions')
  .description('list the partitions')
  .action(async () => {
    const reply = await client().get('partitions');
    finish(reply, () => ((reply.body['partitions'] as string[] | undefined) ?? []).join('\n'));
  });

program
  .command('stats')
  .description('subjects per partition')
  .action(async () => {
    const reply = await client().get('stats');
    const partitions = Object.entries((reply.body['partitions'] as Record<string, number> | undefined) ?? {});
    finish(reply, () =>
      [`total ${String(reply.body['total_subjects'])}`, ...partitions.map(([name, n]) => `${name} ${n}`)].join('\n'),
    );
  });

program
  .command('health')
  .description('health of every component')
  .action(async () => {
    const reply = await client().get('health');
    const components = Object.entries((reply.body['components'] as Record<string, boolean> | undefined) ?? {});
    const healthy = reply.body['status'] === 'healthy';
    // An unhealthy service answers 503 with its component map: a service problem, not a refusal.
    print(
      reply.body,
      [String(reply.body['status']), ...components.map(([name, ok]) => `  ${name}: ${ok ? 'ok' : 'DOWN'}`)].join('\n'),
    );
    process.exitCode = healthy ? EXIT.OK : EXIT.SERVICE;
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else if (error instanceof ServiceUnreachable) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = EXIT.SERVICE;
  } else {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = EXIT.USAGE;
  }
}
