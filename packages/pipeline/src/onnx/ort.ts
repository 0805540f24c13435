// onnxruntime-node for the whole project, its telemetry turned off first: ESM evaluates these imports in order, so
// the environment is set before onnxruntime initialises. Import onnxruntime from here, never from 'onnxruntime-node'.
import './telemetry-off.js';

export * from 'onnxruntime-node';
