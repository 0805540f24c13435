export * from './config.js';
export * from './runtime.js';
export * from './storage-health.js';
export * from './template-keys.js';
