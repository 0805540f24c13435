export * from './config.js';
export * from './runtime.js';
export * from './cluster/index.js';
export * from './storage-health.js';
