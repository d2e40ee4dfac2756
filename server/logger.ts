import { pino, type Logger } from 'pino';

/** The root logger: JSON lines, credentials redacted. Payloads are never logged. */
export function createLogger(level = 'info'): Logger {
  return pino({ name: 'berth', level, redact: ['token', '*.token', 'req.headers.authorization'] });
}
