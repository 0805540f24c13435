export * from './app.js';
export * from './audit.js';
export * from './auth.js';
export * from './backend.js';
export * from './config.js';
export * from './embedded.js';
export * from './rate-limit.js';
export * from './server.js';
