/**
 * onnxruntime-node 1.29 on Linux carries Microsoft's telemetry (1DS). From its first session it keeps a device id and a
 * queue of events for upload to Microsoft (process, session, model and execution-provider facts: 4,261 of them after
 * an afternoon of benchmarks here) under ~/.cache/Microsoft/DeveloperTools/.onnxruntime, and leaves
 * /tmp/mat-debug-<pid>.log behind. A biometric service sends nothing it was not asked to: off, unless the operator sets
 * ORT_DISABLE_TELEMETRY. onnxruntime reads it once, as it initialises, from the process's environment, which only the
 * main thread's process.env writes to: so this runs on the main thread before onnxruntime-node loads (onnx/ort.ts).
 */
process.env.ORT_DISABLE_TELEMETRY ??= '1';
