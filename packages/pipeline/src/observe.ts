/** Records a metric through an observer's callback: metrics must never fail a request, so a throw is dropped. */
export function observe(record: () => void): void {
  try {
    record();
  } catch {
    // Ignored on purpose.
  }
}
