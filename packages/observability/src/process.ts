import type { Logger } from './logger.js';

export interface ProcessLifecycleOptions {
  logger: Logger;
  /** Stops the service cleanly: stop taking work, finish what is in hand, release resources. */
  close(): Promise<void>;
  /** A clean stop can hang on an unreachable dependency: exit anyway after this long. */
  stopTimeoutMs: number;
}

/**
 * SIGTERM/SIGINT stop the service cleanly (exit 0) or, past the timeout, exit 1. A promise
 * rejection nobody handled is logged rather than fatal: the known sources are library
 * internals racing a lost Redis connection, and a request in flight must not take every other
 * request down with it.
 */
export function manageProcessLifecycle(options: ProcessLifecycleOptions): void {
  const { logger } = options;
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    setTimeout(() => {
      logger.error('stop timed out; exiting without a clean stop', { signal });
      process.exit(1);
    }, options.stopTimeoutMs).unref();
    options.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error('unclean stop', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('unhandledRejection', (reason: unknown) => {
    logger.error('unhandled promise rejection', { error: reason });
  });
}
