/**
 * Test hook, inert unless `FACEGATE_TEST_CRASH_AT` names the point: the process then kills
 * itself with SIGKILL there, as a power cut or the OOM killer would, so that a test can check
 * what a restart finds (e.g. `FACEGATE_TEST_CRASH_AT=partition-delete:intent-written`). Read at
 * each call: one environment look-up, nothing beside the work of the paths it sits on (partition
 * deletion, enrolling or appending a template).
 * The points are listed in README (Development); never set it in production.
 */
export function crashPoint(name: string): void {
  if (process.env['FACEGATE_TEST_CRASH_AT'] === name) process.kill(process.pid, 'SIGKILL');
}
