/**
 * The broker's CPU per message, as instructions counted by callgrind: `npm run bench:instructions`.
 *
 * Why: the bench's host is a shared VM whose speed moves by half or double from one hour to the
 * next (on 2026-12-07 its WebSocket round trip read 44 µs at 03:38 and 94–96 µs at 06:37–07:50),
 * so a change worth 5–10% of the broker's CPU cannot be seen in msgs/s without dozens of pairs.
 * Instructions do not depend on what else the host runs: the same build and workload count the same
 * within a few percent (the rest is the JIT and GC doing their work at other moments).
 *
 * How: `berth serve` runs under `valgrind --tool=callgrind`, one thread per file; a client in this
 * process (the SDK) warms it up, the counters are zeroed, the measured phase runs, and callgrind
 * dumps what it counted since. Two phases, 256-byte bodies, one queue:
 *   - publish: N publishes with confirms, 1000 in flight;
 *   - consume: N pre-filled messages consumed at prefetch 1000, each acked.
 * Reported per message: the broker's main thread (the event loop: protocol, engine, SQLite) and all
 * its threads (GC helpers, the JIT's compiler threads, libuv's pool). Written to
 * bench/results/instructions.md. Needs valgrind (Debian's package).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, type Connection } from '../clients/index.js';
import { callgrindTotal, dumpFiles } from './lib/callgrind.js';
import { makeTempDir, removeDir, startBerth } from './lib/services.js';
import { BODY_BYTES, publishWindowed, signal } from './lib/util.js';

const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const QUEUE = 'instructions';
const IN_FLIGHT = 1000;
const PREFETCH = 1000;
const BODY = Buffer.alloc(BODY_BYTES, 0x61);

type Phase = 'publish' | 'consume';

interface PhaseCount {
  phase: Phase;
  messages: number;
  mainThread: number;
  allThreads: number;
  /** Wall time of the measured phase under valgrind (50–100× slower than without). */
  ms: number;
}

function callgrindControl(flag: '-z' | '-d', pid: number): void {
  const result = spawnSync('callgrind_control', [flag, String(pid)], { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) throw new Error(`callgrind_control ${flag} ${pid} failed: ${result.stderr || result.error?.message}`);
}

function publish(conn: Connection, n: number): Promise<number> {
  return publishWindowed(n, IN_FLIGHT, () => conn.publish(QUEUE, BODY).then(() => undefined));
}

async function consume(conn: Connection, n: number): Promise<void> {
  let got = 0;
  const allIn = signal();
  const sub = await conn.consume(
    QUEUE,
    async (m) => {
      await m.ack();
      if (++got === n) allIn.resolve();
    },
    { prefetch: PREFETCH },
  );
  await allIn.promise;
  await sub.cancel();
}

async function measure(phase: Phase, warmup: number, messages: number, keepDir: string | undefined): Promise<PhaseCount> {
  const dataDir = makeTempDir('berth-instructions-');
  const dumpDir = makeTempDir('berth-callgrind-');
  const wrapper = ['valgrind', '--tool=callgrind', '--separate-threads=yes', `--callgrind-out-file=${join(dumpDir, 'cg.%p')}`];
  const broker = await startBerth(join(dataDir, 'data'), { wrapper, timeoutMs: 300_000 });
  try {
    const conn = await connect(broker.url, { clientName: 'bench-instructions', connectTimeoutMs: 60_000 });
    await conn.assertQueue(QUEUE);
    // Warm-up: the JIT compiles the hot paths and SQLite's pages are read in before counting.
    await publish(conn, warmup);
    if (phase === 'consume') {
      await consume(conn, warmup);
      await publish(conn, messages);
    }
    callgrindControl('-z', broker.pid);
    const t0 = performance.now();
    if (phase === 'publish') await publish(conn, messages);
    else await consume(conn, messages);
    const ms = performance.now() - t0;
    callgrindControl('-d', broker.pid);
    await conn.close();
    const files = dumpFiles(readdirSync(dumpDir), broker.pid, 1);
    if (!files.some((f) => f.thread === 1)) throw new Error(`no dump of the main thread in ${dumpDir}: ${readdirSync(dumpDir).join(', ')}`);
    if (keepDir !== undefined) {
      mkdirSync(keepDir, { recursive: true });
      for (const { name, thread } of files) copyFileSync(join(dumpDir, name), join(keepDir, `callgrind.${phase}.thread-${String(thread).padStart(2, '0')}`));
    }
    let mainThread = 0;
    let allThreads = 0;
    for (const { name, thread } of files) {
      const total = callgrindTotal(readFileSync(join(dumpDir, name), 'utf8'));
      allThreads += total;
      if (thread === 1) mainThread = total;
    }
    return { phase, messages, mainThread: mainThread / messages, allThreads: allThreads / messages, ms };
  } finally {
    await broker.stop();
    removeDir(dataDir);
    removeDir(dumpDir);
  }
}

function report(counts: readonly PhaseCount[], context: string): string {
  const lines = [
    '# Berth broker instructions per message',
    '',
    context,
    '',
    '| phase | messages | main thread (instructions / message) | all threads | measured phase under valgrind (s) |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...counts.map((c) => `| ${c.phase} | ${c.messages.toLocaleString('en')} | ${Math.round(c.mainThread).toLocaleString('en')} | ${Math.round(c.allThreads).toLocaleString('en')} | ${(c.ms / 1000).toFixed(1)} |`),
    '',
    'publish: confirmed publishes, 1000 in flight; consume: pre-filled messages consumed at prefetch 1000 and acked; 256-byte bodies. ' +
      'Counted by callgrind from after a warm-up to the end of the phase. The main thread runs the protocol, the engine and SQLite; the others are V8\'s GC and compiler threads and libuv\'s pool, whose share moves with when the JIT happens to recompile.',
    '',
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: 'string', default: '20000' },
      warmup: { type: 'string', default: '20000' },
      out: { type: 'string', default: RESULTS_DIR },
      keep: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(
      [
        'npm run bench:instructions [-- --messages N] [--warmup N] [--out DIR] [--keep DIR]',
        '',
        "The broker's instructions per message under callgrind (valgrind); see bench/README.md.",
        '  --messages N  messages in each measured phase (default 20000)',
        '  --warmup N    messages through the broker before counting starts (default 20000)',
        '  --out DIR     where instructions.md goes (default bench/results/)',
        '  --keep DIR    keep the dumps there, one per phase and thread (callgrind.<phase>.thread-01 is the',
        '                main thread), for callgrind_annotate',
      ].join('\n'),
    );
    return;
  }
  const messages = Number(values.messages);
  const warmup = Number(values.warmup);
  if (!Number.isSafeInteger(messages) || messages < 1 || !Number.isSafeInteger(warmup) || warmup < 0) throw new Error('--messages must be ≥ 1 and --warmup ≥ 0, integers');
  const version = spawnSync('valgrind', ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) throw new Error('valgrind is not installed (Debian: apt-get install valgrind)');
  const counts: PhaseCount[] = [];
  for (const phase of ['publish', 'consume'] as const) {
    const count = await measure(phase, warmup, messages, values.keep);
    console.log(`${phase}: ${Math.round(count.mainThread)} instructions a message on the main thread, ${Math.round(count.allThreads)} in all threads`);
    counts.push(count);
  }
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const context = `${new Date().toISOString()}; commit ${git.status === 0 ? git.stdout.trim() : 'unknown'}; Node ${process.version}; ${version.stdout.trim()}; warm-up ${warmup.toLocaleString('en')} messages.`;
  const text = report(counts, context);
  mkdirSync(values.out, { recursive: true });
  writeFileSync(join(values.out, 'instructions.md'), text);
  console.log(`\n${text}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
