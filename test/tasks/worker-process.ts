/**
 * Helpers for tests that run `berth worker` as a real process against a real broker: spawn a
 * worker and wait for its log lines, read the marks the fixture tasks write, open gates, load a
 * fresh copy of the fixture app bound to this test's broker, and read the broker's queue stats.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startTestServer, tempDir, waitFor } from '../helpers/server.js';

export const CLI = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));
export const FIXTURE = fileURLToPath(new URL('./fixtures/app.js', import.meta.url));

type Fixture = typeof import('./fixtures/app.js');
type LogLine = Record<string, unknown> & { msg?: string };

/** A spawned `berth worker`. */
export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Parsed JSON log lines so far (stdout). */
  readonly logs: LogLine[];
  /** stderr so far. */
  stderr(): string;
  /** Resolves with the exit code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True once the process has exited. */
  hasExited(): boolean;
  /** Waits for a log line with this `msg` (and, optionally, matching `where`). */
  waitForLog(msg: string, options?: { timeoutMs?: number; where?: (line: LogLine) => boolean }): Promise<LogLine>;
}

let fixtureLoads = 0;

/** One test's world: a broker, a mark dir, and the fixture app bound to both. */
export interface Bundle {
  url: string;
  /** BERTH_TEST_DIR: marks and gate files. */
  dir: string;
  fx: Fixture;
  env: NodeJS.ProcessEnv;
  spawnWorker(args: string[], options?: { waitReady?: boolean }): Promise<WorkerProcess>;
}

/**
 * Starts a broker and imports a fresh instance of the fixture app bound to it (a query string on
 * the module URL gives a new module instance, so every test has its own broker and producer).
 */
export async function setup(t: TestContext): Promise<Bundle> {
  const { url } = await startTestServer(t);
  const dir = tempDir(t, 'berth-tasks-');
  const env = { ...process.env, BERTH_URL: url, BERTH_TEST_DIR: dir, BERTH_LOG_LEVEL: 'debug' };
  process.env.BERTH_URL = url;
  process.env.BERTH_TEST_DIR = dir;
  const fx = (await import(`./fixtures/app.js?load=${++fixtureLoads}`)) as Fixture;
  // t.after hooks run in registration order: the broker closes first; closing the app then stops its reconnects.
  t.after(() => fx.app.close());
  return { url, dir, fx, env, spawnWorker: (args, options) => spawnWorker(t, env, args, options) };
}

/** Spawns `berth worker --app <fixture> ...args`; by default waits for its "worker ready" line. Killed after the test. */
export async function spawnWorker(t: TestContext, env: NodeJS.ProcessEnv, args: string[], { waitReady = true } = {}): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, 'worker', '--app', FIXTURE, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: LogLine[] = [];
  let stderr = '';
  let exitedYet = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      exitedYet = true;
      resolve({ code, signal });
    }),
  );
  t.after(async () => {
    if (!exitedYet) child.kill('SIGKILL');
    await exited;
  });
  let buffered = '';
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ msg: '(not json)', line });
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const worker: WorkerProcess = {
    child,
    pid: child.pid as number,
    logs,
    stderr: () => stderr,
    exited,
    hasExited: () => exitedYet,
    async waitForLog(msg, { timeoutMs = 10_000, where = () => true } = {}) {
      let found: LogLine | undefined;
      await waitFor(
        () => {
          found = logs.find((line) => line.msg === msg && where(line));
          if (found === undefined && exitedYet) throw new Error(`worker ${child.pid} exited before logging "${msg}"; stderr: ${stderr}`);
          return found !== undefined;
        },
        { timeoutMs, what: `worker log "${msg}"` },
      );
      return found as LogLine;
    },
  };
  if (waitReady) await worker.waitForLog('worker ready');
  return worker;
}

/** A mark the fixture wrote: the task step and the pid of the process that ran it. */
export interface Mark {
  name: string;
  pid: number;
}

export function readMarks(dir: string): Mark[] {
  const file = join(dir, 'marks');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const space = line.lastIndexOf(' ');
      return { name: line.slice(0, space), pid: Number(line.slice(space + 1)) };
    });
}

/** Waits until a mark `name` exists and returns it (the first one). */
export async function waitForMark(dir: string, name: string, { timeoutMs = 10_000, pid }: { timeoutMs?: number; pid?: number } = {}): Promise<Mark> {
  let found: Mark | undefined;
  await waitFor(
    () => {
      found = readMarks(dir).find((m) => m.name === name && (pid === undefined || m.pid === pid));
      return found !== undefined;
    },
    { timeoutMs, what: `mark "${name}"${pid === undefined ? '' : ` by pid ${pid}`}` },
  );
  return found as Mark;
}

/** Opens the gate a `time.gate(name)` task waits for. */
export function openGate(dir: string, name: string): void {
  writeFileSync(join(dir, name), '');
}

/** A queue as `GET /api/queues` reports it. */
export interface QueueStats {
  name: string;
  ready: number;
  delayed: number;
  unacked: number;
  consumers: number;
}

/** The broker's view of one queue, from its management API. */
export async function queueStats(url: string, queue: string): Promise<QueueStats> {
  const res = await fetch(`${url.replace(/^ws/, 'http')}/api/queues`);
  if (!res.ok) throw new Error(`GET /api/queues: ${res.status}`);
  const { queues } = (await res.json()) as { queues: QueueStats[] };
  const found = queues.find((q) => q.name === queue);
  if (found === undefined) throw new Error(`no queue ${queue} in /api/queues: ${JSON.stringify(queues.map((q) => q.name))}`);
  return found;
}

/** Polls the queue's stats until `check` holds. */
export async function waitForQueue(url: string, queue: string, check: (q: QueueStats) => boolean, { timeoutMs = 10_000, what = 'queue stats' } = {}): Promise<QueueStats> {
  let last: QueueStats | undefined;
  try {
    await waitFor(
      async () => {
        last = await queueStats(url, queue);
        return check(last);
      },
      { timeoutMs, intervalMs: 20, what },
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last: ${JSON.stringify(last)}`);
  }
  return last as QueueStats;
}
