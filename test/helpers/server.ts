/** Starting real brokers for tests: port 0, a temp data dir, silent logs, closed after the test. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { startBroker, type Broker, type BrokerOptions } from '../../server/index.js';

/** A temp folder removed after the test. */
export function tempDir(t: TestContext, prefix = 'berth-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Starts an in-process broker on port 0 with a temp data dir (unless given one). */
export async function startTestServer(t: TestContext, options: Partial<BrokerOptions> = {}): Promise<{ url: string; broker: Broker; dataDir: string }> {
  const dataDir = options.dataDir ?? tempDir(t);
  const broker = await startBroker({ port: 0, logger: pino({ level: 'silent' }), ...options, dataDir });
  t.after(() => broker.close());
  return { url: broker.url, broker, dataDir };
}

const CLI = fileURLToPath(new URL('../../bin/berth.js', import.meta.url));

/** A `berth serve` child process. */
export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code or signal. */
  exited: Promise<number | string>;
}

/** Spawns `berth serve --port 0` on `dataDir` and waits for its "broker listening" log line. */
export async function spawnServer(dataDir: string, extraArgs: string[] = []): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data', dataDir, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // 'close', not 'exit': it comes after stdio is drained, so `stderr` below is whole when it settles.
  const exited = new Promise<number | string>((resolve) => child.on('close', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const onData = (d: Buffer): void => {
      buffered += d.toString();
      for (const line of buffered.split('\n')) {
        if (!line.includes('broker listening')) continue;
        child.stdout!.off('data', onData);
        resolve((JSON.parse(line) as { url: string }).url);
        return;
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`berth serve exited (${code}) before listening: ${stderr}`)));
  });
  child.stdout!.resume();
  return { url, child, exited };
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` until it returns true or the deadline passes. */
export async function waitFor(check: () => boolean | Promise<boolean>, { timeoutMs = 10_000, intervalMs = 10, what = 'condition' } = {}): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** A port that was free a moment ago, so a restarted broker can listen where the client left it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
