export * from './types.js';
export * from './in-process.js';
export * from './bullmq.js';
export * from './worker-registry.js';
