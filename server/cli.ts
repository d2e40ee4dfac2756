/**
 * The `berth` command. All CLI and environment parsing lives here and produces
 * the same options objects the API takes.
 */
import { parseArgs } from 'node:util';
import { startBroker } from './broker.js';
import { createLogger } from './logger.js';
import { DEFAULTS, type BrokerOptions } from './options.js';

const HELP = `berth — message broker and task queue

Usage:
  berth serve [options]     run the broker (HTTP + WebSocket on one port)
  berth worker --help       run task workers (see there)

serve options:
  --host <addr>             interface to listen on            (default ${DEFAULTS.host}, env BERTH_HOST)
  --port <n>                port; 0 picks a free one           (default ${DEFAULTS.port}, env BERTH_PORT)
  --data <dir>              folder for berth.db                (default ${DEFAULTS.dataDir}, env BERTH_DATA)
                            held by one broker at a time
  --durability <mode>       full: fsync before each confirm    (default ${DEFAULTS.durability}, env BERTH_DURABILITY)
                            normal: survives kill -9, not power loss
  --token <secret>          require this token from clients    (env BERTH_TOKEN)
  --heartbeat-ms <n>        heartbeat interval, 0 = off        (default ${DEFAULTS.heartbeatMs})
  --max-body-bytes <n>      largest message body               (default ${DEFAULTS.maxBodyBytes})
  --busy-poll-us <n>        poll sockets this long after work  (default ${DEFAULTS.busyPollUs}, env BERTH_BUSY_POLL_US)
                            before sleeping; 0 = off (saves CPU, adds a wake-up per round trip)
  --log-level <level>       fatal|error|warn|info|debug|trace  (default info, env BERTH_LOG_LEVEL)

Endpoints on the same port: ws://host:port (protocol), /healthz, /metrics, /api/queues.
SIGTERM or SIGINT closes connections and commits before exit.
`;

function intOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new TypeError(`--${name} must be an integer, got ${JSON.stringify(value)}`);
  return n;
}

/** Parses `berth serve` arguments and the environment into broker options. */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv): Partial<BrokerOptions> & { logLevel: string } {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      data: { type: 'string' },
      durability: { type: 'string' },
      token: { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'busy-poll-us': { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  const out: Partial<BrokerOptions> & { logLevel: string } = { logLevel: values['log-level'] ?? env.BERTH_LOG_LEVEL ?? 'info' };
  const host = values.host ?? env.BERTH_HOST;
  if (host !== undefined) out.host = host;
  const port = intOption('port', values.port ?? env.BERTH_PORT);
  if (port !== undefined) out.port = port;
  const data = values.data ?? env.BERTH_DATA;
  if (data !== undefined) out.dataDir = data;
  const durability = values.durability ?? env.BERTH_DURABILITY;
  if (durability !== undefined) out.durability = durability as BrokerOptions['durability'];
  const token = values.token ?? env.BERTH_TOKEN;
  if (token !== undefined) out.token = token;
  const heartbeatMs = intOption('heartbeat-ms', values['heartbeat-ms']);
  if (heartbeatMs !== undefined) out.heartbeatMs = heartbeatMs;
  const maxBodyBytes = intOption('max-body-bytes', values['max-body-bytes']);
  if (maxBodyBytes !== undefined) {
    out.maxBodyBytes = maxBodyBytes;
    out.maxFrameBytes = Math.max(DEFAULTS.maxFrameBytes, maxBodyBytes + DEFAULTS.maxHeaderBytes + 9);
  }
  const busyPollUs = intOption('busy-poll-us', values['busy-poll-us'] ?? env.BERTH_BUSY_POLL_US);
  if (busyPollUs !== undefined) out.busyPollUs = busyPollUs;
  return out;
}

async function serve(argv: string[]): Promise<void> {
  const { logLevel, ...options } = parseServeArgs(argv, process.env);
  const logger = createLogger(logLevel);
  // The handlers go in before the broker starts: "broker listening" is logged during the start, and
  // a supervisor may answer it with a signal at once, which must close the broker, not kill it.
  const started = startBroker({ ...options, logger });
  let signals = 0;
  const stop = (signal: string): void => {
    if (++signals > 1) process.exit(1);
    logger.info({ signal }, 'shutting down');
    started
      .then((broker) => broker.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await started;
}

/** Runs `berth serve` with these arguments (after the word `serve`). */
export async function runServe(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return;
  }
  await serve(argv);
}
