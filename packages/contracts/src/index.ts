export * from './errors.js';
export * from './health.js';
export * from './jobs.js';
export * from './limits.js';
export * from './requests.js';
export * from './responses.js';
export * from './env.js';
