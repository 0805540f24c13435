import { spawn, spawnSync } from 'node:child_process';
import { repoRoot } from '../support/paths.js';

/** Why no Docker stack can run here, or undefined when one can. */
export function dockerEngineProblem(): string | undefined {
  const has = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
  if (!has('docker')) return 'the docker command is not installed (Debian: apt-get install docker.io)';
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 20_000 });
  if (info.status !== 0)
    return `no Docker engine answers (${(info.stderr || info.stdout || '').trim().split('\n')[0]})`;
  const plugin = spawnSync('docker', ['compose', 'version'], { stdio: 'ignore' }).status === 0;
  if (!plugin && !has('docker-compose')) return 'neither `docker compose` nor docker-compose is installed';
  if (!has('debootstrap')) return 'debootstrap is not installed (the local images are bootstrapped with it)';
  return undefined;
}

/** Runs a command to the end, its output on this process's stderr; rejects on a non-zero exit. */
export function runCommand(command: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', process.stderr, process.stderr],
    });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${command} ${args.join(' ')} exited with ${code ?? signal}`)),
    );
  });
}

/** `docker` with the given arguments; its standard output, trimmed. */
export function docker(...args: string[]): string {
  const result = spawnSync('docker', args, { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) throw new Error(`docker ${args.join(' ')}: ${result.stderr.trim()}`);
  return result.stdout.trim();
}

/** The ids of what compose created for a project: containers of a service, or volumes. */
export function composeObjects(project: string, kind: 'container' | 'volume', service?: string): string[] {
  const filters = ['--filter', `label=com.docker.compose.project=${project}`];
  if (service) filters.push('--filter', `label=com.docker.compose.service=${service}`);
  const listed = kind === 'container' ? docker('ps', '-aq', ...filters) : docker('volume', 'ls', '-q', ...filters);
  return listed.split('\n').filter(Boolean);
}
