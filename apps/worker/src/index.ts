// The runtime, its configuration and key ring live in @facegate/runtime (shared with the embedded gateway).
export * from '@facegate/runtime';
export * from './cluster/index.js';
export { rekey } from './rekey.js';
export { relaunchWithCudaLibraries } from './cuda-relaunch.js';
