// Preloaded (`node --import`) to start a process as if the native addons named in FACEGATE_TEST_WITHOUT_ADDONS
// (comma-separated file names, e.g. png_binding.node) had not been built: loading them fails as a missing file does.
import Module from 'node:module';
import path from 'node:path';

const hidden = new Set((process.env.FACEGATE_TEST_WITHOUT_ADDONS ?? '').split(',').filter(Boolean));
const load = Module._load;
Module._load = function loadUnlessHidden(request, ...rest) {
  if (hidden.has(path.basename(request))) {
    const error = new Error(`Cannot find module '${request}'`);
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  }
  return load.call(this, request, ...rest);
};
