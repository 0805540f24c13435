export * from './types.js';
export * from './in-process.js';
export * from './bullmq.js';
export * from './worker-registry.js';
export * from './redis.js';
export * from './request-reply.js';
export * from './consumer.js';
export * from './lua.js';
