import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { startGateway, type ServiceBackend } from '@facegate/gateway';
import { silentLogger } from '@facegate/observability';
import { killAtExit, scratchDirectory } from './leftovers.js';
import { repoRoot } from './paths.js';

export interface RunningService {
  baseUrl: string;
  dataDir: string;
  backend: ServiceBackend;
  close(): Promise<void>;
}

/** A scratch directory, removed when this process ends (support/leftovers.ts) if nothing removed it before. */
export { scratchDirectory as temporaryDirectory } from './leftovers.js';

/** The embedded service in this process, on a free loopback port, with its own data dir. */
export async function startEmbeddedService(env: Record<string, string> = {}): Promise<RunningService> {
  const dataDir = env['DATA_DIR'] ?? scratchDirectory('data');
  const gateway = await startGateway(
    { MODELS_DIR: path.join(repoRoot, 'models'), ...env, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1' },
    silentLogger,
  );
  return {
    baseUrl: `http://127.0.0.1:${gateway.port}`,
    dataDir,
    backend: gateway.backend,
    async close() {
      gateway.server.closeAllConnections();
      await gateway.close();
      if (!env['DATA_DIR']) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * `npm run audit -- ARGS` as an operator runs it, with the service's environment (`DATA_DIR` or `TEMPLATE_KEYS`, whose
 * key ring verifies the log's seals).
 */
export function auditTool(args: readonly string[], env: Record<string, string>): SpawnSyncReturns<string> {
  return spawnSync(
    process.execPath,
    ['--conditions=development', '--import', 'tsx', path.join(repoRoot, 'apps/gateway/src/audit-main.ts'), ...args],
    { cwd: repoRoot, env: { ...process.env, ...env }, encoding: 'utf8' },
  );
}

/** `NAME=VALUE` settings (a benchmark's repeated `--env` option) as an environment for the service. */
export function serviceEnvFrom(settings: readonly string[]): Record<string, string> {
  return Object.fromEntries(
    settings.map((setting) => {
      const at = setting.indexOf('=');
      return [setting.slice(0, at), setting.slice(at + 1)];
    }),
  );
}

/** This process's environment with `changes` applied; a name set to undefined is left out. */
export function childEnvironment(changes: Record<string, string | undefined>): Record<string, string> {
  const merged: Record<string, string | undefined> = { ...process.env, ...changes };
  return Object.fromEntries(
    Object.entries(merged).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
}

export interface ServiceProcess {
  baseUrl: string;
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** The service as a user runs it (`node apps/gateway/...`), in its own process. */
/** `nodeOptions` go before the script, e.g. `--cpu-prof` (which NODE_OPTIONS does not accept). */
export async function startServiceProcess(
  /** Added to this process's environment; a name set to undefined is left out. */
  env: Record<string, string | undefined>,
  nodeOptions: readonly string[] = [],
  /** Another checkout of the repository to run the service of (benchmarks comparing two). */
  root: string = repoRoot,
): Promise<ServiceProcess> {
  const child = killAtExit(
    spawn(
      process.execPath,
      process.env.FACEGATE_SERVICE_COMPILED === '1'
        ? [...nodeOptions, path.join(root, 'apps/gateway/dist/main.js')]
        : [...nodeOptions, '--conditions=development', '--import', 'tsx', path.join(root, 'apps/gateway/src/main.ts')],
      {
        cwd: root,
        // The port is read from the `listening` log line, which needs the info level.
        env: childEnvironment({ PORT: '0', ...env, LOG_LEVEL: 'info' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
  );
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start:\n${output}`)), 60_000);
    // Only the lines not yet read are parsed, and not after the port is known: re-splitting the
    // whole log on every chunk flattened a growing string and, under a benchmark's load, took
    // this process several percent of a core from the service it measures.
    let unread = '';
    const check = (chunk: string): void => {
      const lines = (unread + chunk).split('\n');
      unread = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const record = JSON.parse(line) as { msg?: string; port?: number };
        if (record.msg === 'listening' && record.port) {
          clearTimeout(timer);
          child.stdout.off('data', check);
          resolve(record.port);
          return;
        }
      }
    };
    child.stdout.on('data', check);
    void exited.then((code) => reject(new Error(`service exited with ${code}:\n${output}`)));
  });
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    child,
    output: () => output,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exitedOrKilled(child, exited);
    },
  };
}

/**
 * Waits for a signalled process to exit, and SIGKILLs it if it has not within the grace time:
 * a process stuck in its shutdown must fail its own test, not hang the whole suite.
 */
export async function exitedOrKilled(
  child: ChildProcess,
  exited: Promise<number | null>,
  graceMs = 25_000,
): Promise<number | null> {
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

export function readImage(file: string): Uint8Array {
  return new Uint8Array(readFileSync(file));
}
