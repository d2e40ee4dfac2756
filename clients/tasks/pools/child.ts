/**
 * Entry of a pool child: a forked process (`processes` pool) or a worker thread (`threads`).
 * It imports the app module, then runs the tasks its parent sends, one at a time. It never talks
 * to the broker for its parent: acks, results and lease extensions are the parent's.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { deserializeError, serializeError } from '../errors.js';
import { LazyAbort } from '../../lazy-abort.js';
import { execute } from '../execute.js';
import { POOL_CHILD_MARK, type FromChild, type ToChild } from './child-protocol.js';
import { loadApp } from './load-app.js';

const port = parentPort;
const send: (message: FromChild) => void = port !== null ? (m) => port.postMessage(m) : (m) => process.send?.(m);
const moduleSpecifier = port !== null ? (workerData as { module: string }).module : process.argv[2];

if (port === null) {
  // The parent owns shutdown: Ctrl-C reaches the whole process group, but only the parent decides.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  // An orphan (parent killed with -9) exits instead of lingering.
  process.on('disconnect', () => process.exit(0));
}

(globalThis as Record<symbol, unknown>)[POOL_CHILD_MARK] = true;

let controller: LazyAbort | undefined;

async function main(): Promise<void> {
  if (moduleSpecifier === undefined) throw new Error('pool child started without an app module');
  const app = await loadApp(moduleSpecifier);
  const onMessage = (message: ToChild): void => {
    if (message.type === 'run') {
      const current = new LazyAbort();
      controller = current;
      execute((name) => app.getTask(name), message.job, current).then((outcome) => {
        if (controller === current) controller = undefined;
        send({ type: 'done', outcome });
      });
    } else if (message.type === 'abort') {
      controller?.abort(deserializeError(message.reason));
    } else if (message.type === 'exit') {
      process.exit(0);
    }
  };
  if (port !== null) port.on('message', onMessage);
  else process.on('message', onMessage);
  send({ type: 'ready' });
}

main().catch((err: unknown) => {
  send({ type: 'init-error', error: serializeError(err) });
  if (port === null) process.exitCode = 1;
});
