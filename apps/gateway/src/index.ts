export * from './app.js';
export * from './backend.js';
export * from './config.js';
export * from './embedded.js';
