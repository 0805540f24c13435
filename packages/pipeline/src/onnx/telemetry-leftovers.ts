import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/**
 * The folder where onnxruntime kept its telemetry (a device id and a queue of events for upload to Microsoft) for a
 * process that let it, as facegate did before it turned the telemetry off (onnx/telemetry-off.ts); undefined where no
 * such folder is, or where the operator turned the telemetry on (ORT_DISABLE_TELEMETRY other than 1), which keeps it.
 * The service leaves the folder where it is: other programs on the machine may use onnxruntime too.
 */
export function onnxruntimeTelemetryFolder(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.ORT_DISABLE_TELEMETRY !== '1') return undefined;
  const home = env.HOME ?? homedir();
  const caches = new Set([env.XDG_CACHE_HOME ?? path.join(home, '.cache'), path.join(home, '.cache')]);
  for (const cache of caches) {
    const folder = path.join(cache, 'Microsoft', 'DeveloperTools', '.onnxruntime');
    if (existsSync(folder)) return folder;
  }
  return undefined;
}
