/**
 * `berth worker`: runs a worker for the task app a module exports. Node-only.
 * All of the worker's argument and environment parsing lives here.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { TaskError } from './errors.js';
import { loadApp } from './pools/load-app.js';
import type { PoolKind } from './pools/pool.js';
import type { WorkerOptions } from './worker.js';

export const WORKER_HELP = `berth worker — run tasks of a task app

Usage:
  berth worker --app MODULE [options]

Options:
  -A, --app <module>              module exporting the app (createApp(...)) as "app" or default;
                                  MODULE:NAME picks another export              (env BERTH_APP)
  -Q, --queues <q1,q2>            queues to consume                 (default: the app's default queue)
  -c, --concurrency <n>           tasks at once    (default: 100 for async, CPU count for processes/threads)
  -P, --pool <kind>               processes | threads | async | solo                 (default async)
  -O <optimization>               fair: a task goes to a free child only              (default fair)
                                  default: tasks are assigned to children round-robin on arrival
      --prefetch-multiplier <n>   prefetch = concurrency × n, per queue                  (default 4)
      --shutdown-timeout-ms <n>   warm shutdown waits this long for running tasks   (default 30000)
  -n, --name <name>               worker name                                 (default worker-<pid>)
      --log-level <level>         fatal|error|warn|info|debug   (default info, env BERTH_LOG_LEVEL)
  -h, --help                      show this help

The first SIGTERM or SIGINT is a warm shutdown: stop taking tasks, give prefetched ones back,
finish the running ones and ack them. A second one is cold: running tasks are killed and, when
they ack late, go back to the queue.
`;

function positiveInt(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new TaskError('E_TASK_INVALID', `--${name} must be an integer ≥ 1, got ${JSON.stringify(value)}`);
  return n;
}

/** Parsed `berth worker` arguments. */
export interface WorkerCommand {
  module: string;
  worker: WorkerOptions;
  logLevel: string;
}

/** Parses `berth worker` arguments and the environment. */
export function parseWorkerArgs(argv: string[], env: NodeJS.ProcessEnv, cwd: string): WorkerCommand {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      app: { type: 'string', short: 'A' },
      queues: { type: 'string', short: 'Q' },
      concurrency: { type: 'string', short: 'c' },
      pool: { type: 'string', short: 'P' },
      O: { type: 'string', short: 'O' },
      'prefetch-multiplier': { type: 'string' },
      'shutdown-timeout-ms': { type: 'string' },
      name: { type: 'string', short: 'n' },
      'log-level': { type: 'string' },
    },
  });
  const app = values.app ?? env.BERTH_APP;
  if (app === undefined) throw new TaskError('E_TASK_INVALID', '--app is required: the module that exports your task app');
  const pool = values.pool ?? 'async';
  if (!['processes', 'threads', 'async', 'solo'].includes(pool)) {
    throw new TaskError('E_TASK_INVALID', `-P must be processes, threads, async or solo, got ${JSON.stringify(pool)}`);
  }
  const optimization = values.O ?? 'fair';
  if (optimization !== 'fair' && optimization !== 'default') {
    throw new TaskError('E_TASK_INVALID', `-O must be fair or default, got ${JSON.stringify(optimization)}`);
  }
  const module = /^[a-z][a-z0-9+.-]*:\/\//i.test(app) ? app : pathToFileURL(resolve(cwd, app.replace(/:[A-Za-z_$][\w$]*$/, ''))).href + (app.match(/:[A-Za-z_$][\w$]*$/)?.[0] ?? '');
  const worker: WorkerOptions = { pool: pool as PoolKind, fair: optimization === 'fair', module };
  if (values.queues !== undefined) worker.queues = values.queues.split(',').map((q) => q.trim()).filter((q) => q !== '');
  const concurrency = positiveInt('concurrency', values.concurrency);
  if (concurrency !== undefined) worker.concurrency = concurrency;
  const multiplier = positiveInt('prefetch-multiplier', values['prefetch-multiplier']);
  if (multiplier !== undefined) worker.prefetchMultiplier = multiplier;
  const shutdown = positiveInt('shutdown-timeout-ms', values['shutdown-timeout-ms']);
  if (shutdown !== undefined) worker.shutdownTimeoutMs = shutdown;
  if (values.name !== undefined) worker.name = values.name;
  return { module, worker, logLevel: values['log-level'] ?? env.BERTH_LOG_LEVEL ?? 'info' };
}

/** Runs `berth worker` until a signal stops it. */
export async function runWorker(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(WORKER_HELP);
    return;
  }
  const { module, worker: options, logLevel } = parseWorkerArgs(argv, process.env, process.cwd());
  const log = pino({ level: logLevel, base: { pid: process.pid } });
  const app = await loadApp(module);
  const worker = app.worker(options);
  worker.on((event) => {
    switch (event.type) {
      case 'error':
        log.error({ err: event.error }, 'worker error');
        break;
      case 'task-failed':
        log.warn({ taskId: event.taskId, task: event.name, error: event.error.message, type: event.error.type }, 'task failed');
        break;
      case 'task-received':
      case 'task-started':
        log.debug({ taskId: event.taskId, task: event.name }, event.type.replace('-', ' '));
        break;
      default:
        log.info({ ...event, type: undefined, task: event.name, name: undefined }, event.type.replace('-', ' '));
    }
  });
  let signals = 0;
  const stop = (signal: string): void => {
    signals++;
    const force = signals > 1;
    log.info({ signal, running: worker.running }, force ? 'cold shutdown' : 'warm shutdown');
    worker.close({ force }).then(
      () => {
        log.info('worker stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await worker.start();
  log.info({ name: worker.name, queues: options.queues ?? [app.defaultQueue], pool: options.pool, concurrency: options.concurrency ?? 'default' }, 'worker ready');
}
