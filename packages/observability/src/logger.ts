export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

// Field names that may carry biometric data or credentials: their values never reach a log line.
const REDACTED_FIELD = /image|template|embedding|api[-_]?key|secret|password|token|authorization/i;

function sanitise(value: unknown, key: string): unknown {
  if (REDACTED_FIELD.test(key)) return '[redacted]';
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return `[${value.byteLength} bytes]`;
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  if (typeof value === 'string' && value.length > 512) return `${value.slice(0, 512)}…`;
  return value;
}

export interface LoggerOptions {
  level: LogLevel;
  service: string;
  write?: (line: string) => void;
}

/** Structured JSON lines, one per event, on stdout unless told otherwise. */
export function createLogger(options: LoggerOptions, bound: LogFields = {}): Logger {
  const threshold = LEVEL_ORDER[options.level];
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const emit = (level: LogLevel, message: string, fields: LogFields = {}): void => {
    if (LEVEL_ORDER[level] < threshold) return;
    const record: LogFields = { time: new Date().toISOString(), level, service: options.service };
    for (const [key, value] of Object.entries({ ...bound, ...fields })) record[key] = sanitise(value, key);
    record['msg'] = message;
    write(JSON.stringify(record) + '\n');
  };
  return {
    debug: (message, fields) => emit('debug', message, fields),
    info: (message, fields) => emit('info', message, fields),
    warn: (message, fields) => emit('warn', message, fields),
    error: (message, fields) => emit('error', message, fields),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

/** A logger that drops everything: for tests and tools that want silence. */
export const silentLogger: Logger = createLogger({ level: 'error', service: 'silent', write: () => {} });
