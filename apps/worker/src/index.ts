export * from './config.js';
export * from './runtime.js';
export * from './cluster/index.js';
export * from './storage-health.js';
export * from './template-keys.js';
export { rekey } from './rekey.js';
export { relaunchWithCudaLibraries } from './cuda-relaunch.js';
