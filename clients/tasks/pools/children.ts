/**
 * The `processes` pool (forked children, Celery's prefork) and the `threads` pool (worker_threads).
 * Each slot is one child that runs one task at a time. A child that is killed (hard time limit,
 * revoke with terminate) or dies is replaced by a new one.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Worker as Thread } from 'node:worker_threads';
import { serializeError, TaskError, type SerializedError } from '../errors.js';
import type { Outcome, PoolJob } from '../execute.js';
import type { FromChild, ToChild } from './child-protocol.js';
import type { Pool } from './pool.js';

const CHILD_ENTRY = new URL('./child.js', import.meta.url);

/** One live child, whichever kind. */
interface ChildHandle {
  send(message: ToChild): void;
  onMessage(listener: (message: FromChild) => void): void;
  onExit(listener: (code: number | null, signal: string | null) => void): void;
  kill(): void;
}

function spawnProcess(module: string): ChildHandle {
  const child: ChildProcess = fork(CHILD_ENTRY, [module], { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return {
    send: (message) => {
      if (child.connected) child.send(message);
    },
    onMessage: (listener) => child.on('message', (m) => listener(m as FromChild)),
    onExit: (listener) => child.on('exit', (code, signal) => listener(code, signal)),
    kill: () => child.kill('SIGKILL'),
  };
}

function spawnThread(module: string): ChildHandle {
  const thread = new Thread(CHILD_ENTRY, { workerData: { module } });
  thread.on('error', () => {
    // An uncaught error in the thread ends it; 'exit' follows and reports the task lost.
  });
  return {
    send: (message) => thread.postMessage(message),
    onMessage: (listener) => thread.on('message', listener),
    onExit: (listener) => thread.on('exit', (code) => listener(code, null)),
    kill: () => void thread.terminate(),
  };
}

interface Slot {
  child: ChildHandle | undefined;
  /** Resolves when the slot's child is ready for a task. */
  ready: Promise<void>;
  run: ((outcome: Outcome) => void) | undefined;
  killing: boolean;
}

export function createChildPool(kind: 'processes' | 'threads', size: number, module: string): Pool {
  const spawn = kind === 'processes' ? spawnProcess : spawnThread;
  const slots: Slot[] = [];
  let closed = false;

  const startChild = (slot: Slot): Promise<void> => {
    const child = spawn(module);
    slot.child = child;
    slot.killing = false;
    slot.ready = new Promise<void>((resolve, reject) => {
      child.onMessage((message) => {
        if (message.type === 'ready') resolve();
        else if (message.type === 'init-error') {
          reject(new TaskError('E_TASK_INVALID', `pool child could not load ${module}: ${message.error.message}`));
        } else if (message.type === 'done') {
          const settle = slot.run;
          slot.run = undefined;
          settle?.(message.outcome);
        }
      });
      child.onExit((code, signal) => {
        if (slot.child !== child) return;
        slot.child = undefined;
        reject(new TaskError('E_WORKER_LOST', `pool child exited before it was ready (code ${code}, signal ${signal})`));
        const settle = slot.run;
        slot.run = undefined;
        if (settle !== undefined) {
          const lost: SerializedError = serializeError(
            new TaskError('E_WORKER_LOST', `the pool child running the task exited (code ${code}, signal ${signal})`),
          );
          settle(slot.killing ? { kind: 'killed' } : { kind: 'lost', error: lost });
        }
        if (!closed) {
          // Replace it; a child that cannot start again leaves the slot failing its runs.
          startChild(slot).catch(() => {});
        }
      });
    });
    return slot.ready;
  };

  return {
    kind,
    size,
    async start() {
      for (let i = 0; i < size; i++) slots.push({ child: undefined, ready: Promise.resolve(), run: undefined, killing: false });
      await Promise.all(slots.map((slot) => startChild(slot)));
    },
    async run(slot: number, job: PoolJob): Promise<Outcome> {
      const s = slots[slot];
      if (s === undefined) throw new RangeError(`no slot ${slot}`);
      try {
        await s.ready;
      } catch (err) {
        return { kind: 'lost', error: serializeError(err) };
      }
      const child = s.child;
      if (child === undefined) return { kind: 'lost', error: serializeError(new TaskError('E_WORKER_LOST', 'pool child is gone')) };
      return new Promise<Outcome>((resolve) => {
        s.run = resolve;
        child.send({ type: 'run', job });
      });
    },
    abort(slot: number, reason: SerializedError) {
      const s = slots[slot];
      if (s?.run !== undefined) s.child?.send({ type: 'abort', reason });
    },
    kill(slot: number) {
      const s = slots[slot];
      if (s?.run === undefined || s.child === undefined) return;
      s.killing = true;
      s.child.kill();
    },
    async close() {
      closed = true;
      const exits = slots.map(
        (s) =>
          new Promise<void>((resolve) => {
            const child = s.child;
            if (child === undefined) return resolve();
            child.onExit(() => resolve());
            if (s.run !== undefined) {
              s.killing = true;
              child.kill();
            } else child.send({ type: 'exit' });
            // A child stuck in a loop does not read 'exit'.
            setTimeout(() => child.kill(), 2000).unref();
          }),
      );
      await Promise.all(exits);
    },
  };
}
