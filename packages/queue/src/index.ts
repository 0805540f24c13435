export * from './types.js';
export * from './in-process.js';
