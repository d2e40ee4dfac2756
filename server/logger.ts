import { pino, type Logger } from 'pino';

/**
 * The root logger: JSON lines on stdout, credentials redacted. Payloads are never logged.
 *
 * Written synchronously, line by line. pino's default destination buffers and, at exit, flushes
 * with sonic-boom's `flushSync`, which retries a failed write every 100 ms whatever the error: with
 * stdout's reader gone (EPIPE), a `berth serve` stopped by a signal never exited. Written at once,
 * a broken pipe turns logging off instead (pino drops writes after EPIPE). The broker logs a line
 * per connection and per queue operation, never per message, so the writes cost nothing that shows.
 */
export function createLogger(level = 'info'): Logger {
  return pino({ name: 'berth', level, redact: ['token', '*.token', 'req.headers.authorization'] }, pino.destination({ dest: 1, sync: true }));
}
