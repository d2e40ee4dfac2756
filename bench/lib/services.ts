/**
 * Processes the bench itself starts: `berth serve` (as users deploy it) and a
 * Redis with AOF for BullMQ's durable setting. Both are stopped by the bench.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { sleep } from './util.js';

const BERTH_CLI = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));

/** Keeps the last lines a process printed, for error messages. */
function tail(limit = 40): { push(line: string): void; text(): string } {
  const lines: string[] = [];
  return {
    push(line) {
      lines.push(line.length > 500 ? `${line.slice(0, 500)}…` : line);
      if (lines.length > limit) lines.shift();
    },
    text: () => lines.join('\n'),
  };
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await waitExit(child, graceMs))) {
    child.kill('SIGKILL');
    await waitExit(child, 5000);
  }
}

export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface BerthProcess {
  readonly url: string;
  readonly pid: number;
  readonly dataDir: string;
  /** From spawn to the "broker listening" log line. */
  readonly readyMs: number;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs `node dist/bin/berth.js serve --port 0 --data <dataDir>` and waits for its "broker listening"
 * line. `wrapper` is a command to run it under (valgrind and its options): it must run node in its
 * own process, so that `pid` is the broker's.
 */
export function startBerth(
  dataDir: string,
  options: { timeoutMs?: number; nodeArgs?: readonly string[]; wrapper?: readonly string[] } = {},
): Promise<BerthProcess> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const t0 = performance.now();
  const [command, ...args] = [...(options.wrapper ?? []), process.execPath, ...(options.nodeArgs ?? []), BERTH_CLI, 'serve', '--port', '0', '--data', dataDir];
  const child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = tail();
  createInterface({ input: child.stderr! }).on('line', (line) => out.push(line));
  return new Promise<BerthProcess>((resolve, reject) => {
    let settled = false;
    const fail = (why: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`berth serve ${why}\n${out.text()}`));
    };
    const timer = setTimeout(() => fail(`was not ready within ${timeoutMs} ms`), timeoutMs);
    child.once('exit', (code, sig) => fail(`exited (${code ?? sig}) before it was ready`));
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    // Keep reading stdout for the broker's whole life: a full pipe would block its logging.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      out.push(line);
      if (settled || !line.includes('broker listening')) return;
      let url: unknown;
      try {
        url = (JSON.parse(line) as { url?: unknown }).url;
      } catch {
        return;
      }
      if (typeof url !== 'string') return;
      settled = true;
      clearTimeout(timer);
      const readyMs = performance.now() - t0;
      resolve({
        url,
        pid: child.pid!,
        dataDir,
        readyMs,
        output: () => out.text(),
        stop: () => stopProcess(child, 60_000),
      });
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

export interface RedisProcess {
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/** Starts `redis-server` with AOF (appendfsync everysec) on a free loopback port and a temp --dir. */
export async function startDurableRedis(): Promise<RedisProcess> {
  let port = 0;
  for (let p = 6390; p < 6490; p++) {
    if (await portFree(p)) {
      port = p;
      break;
    }
  }
  if (port === 0) throw new Error('no free port in 6390–6489 for the bench redis-server');
  const dir = makeTempDir('berth-bench-redis-');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '', '--daemonize', 'no', '--loglevel', 'warning', '--maxmemory-policy', 'noeviction'];
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = tail();
  child.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const stop = async (): Promise<void> => {
    await stopProcess(child, 30_000);
    removeDir(dir);
  };
  const t0 = Date.now();
  while (Date.now() - t0 < 10_000) {
    const failed = await Promise.race([spawnError, sleep(100).then(() => null)]);
    if (failed !== null) {
      removeDir(dir);
      throw new Error(`redis-server could not start: ${failed.message}`);
    }
    if (child.exitCode !== null) {
      removeDir(dir);
      throw new Error(`redis-server exited with ${child.exitCode}: ${out.text()}`);
    }
    if (await redisPing(port)) return { port, pid: child.pid!, stop };
  }
  await stop();
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s: ${out.text()}`);
}
