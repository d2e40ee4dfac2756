/**
 * Physical floors under two benchmark workloads, measured on this machine with
 * no broker involved:
 *   - fdatasync / fsync of a 4 KiB append, and a SQLite autocommit INSERT with
 *     journal_mode=WAL made durable by synchronous=FULL, or by synchronous=NORMAL and an
 *     fdatasync of the -wal file after it as Berth's store does (what one confirmed publish must
 *     wait for);
 *   - a 300-byte round trip between two Node processes over loopback, on a
 *     WebSocket (ws) and on a raw TCP socket (what one prefetch-1 delivery must wait for);
 *   - the same WebSocket round trip with the echo process polling its socket instead
 *     of sleeping (what `berth serve --busy-poll-us` buys: the difference is the kernel
 *     wake-up of a sleeping process), and fdatasync while another process polls (what
 *     it may cost a commit on a virtual machine);
 *   - the WebSocket round trip again, with the echo process making the message durable before it
 *     replies (a SQLite INSERT and an fdatasync of the -wal, as Berth's store does): a broker
 *     with no protocol, no engine and no queue, the floor of a publish confirmed one at a time
 *     (w2), with both processes asleep between messages as they are there;
 *   - SQLite reading back stored 256-byte messages in queue order and deleting them, pages of
 *     1000 on Berth's table and index with each body in its row (the storage work a consumed
 *     message costs a broker that keeps its queues on disk, before any network), and the same
 *     through Berth's own store, which keeps the bodies of a commit in body runs
 *     (storage/body-runs.ts): w3-p1000 is bound by it.
 * Each row: p50, p99 and sample count, in µs. Prints a markdown table and writes
 * bench/results/floors.md. Run: `npm run build && node dist/bench/floors.js [--quick]`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync, fdatasyncSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync,
} from 'node:fs';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { WebSocket, WebSocketServer } from 'ws';
import { emptyBatch, openSqliteStore } from '../storage/index.js';
import { percentileSorted } from './lib/util.js';

const quick = process.argv.includes('--quick');
const DISK_SAMPLES = quick ? 200 : 2000;
const DISK_WARMUP = 50;
const RTT_SAMPLES = quick ? 2000 : 20000;
const RTT_WARMUP = 1000;
const RTT_BYTES = 300;
/** The size of a confirm frame on the wire, answering a publish of a 256-byte body (~350 bytes). */
const CONFIRM_BYTES = 23;
const PUBLISH_BYTES = 349;
const CONSUME_ROWS = quick ? 20_000 : 100_000;
const CONSUME_PAGE = 1000;

interface Row { what: string; p50: number; p99: number; mean: number; n: number }

function row(what: string, samples: number[]): Row {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { what, p50: percentileSorted(sorted, 50), p99: percentileSorted(sorted, 99), mean, n: sorted.length };
}

/** Runs `op` warmup + samples times; returns the timed samples in µs. */
async function timeEach(warmup: number, samples: number, op: () => unknown): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < warmup + samples; i++) {
    const t0 = process.hrtime.bigint();
    const r = op();
    if (r instanceof Promise) await r; // a sync op is not charged a microtask turn
    const dt = Number(process.hrtime.bigint() - t0) / 1000;
    if (i >= warmup) out.push(dt);
  }
  return out;
}

async function syncFloor(dir: string, name: string, sync: (fd: number) => void): Promise<number[]> {
  const fd = openSync(join(dir, `${name}.dat`), 'a');
  const block = Buffer.alloc(4096, 0x5a);
  try {
    return await timeEach(DISK_WARMUP, DISK_SAMPLES, () => {
      writeSync(fd, block);
      sync(fd);
    });
  } finally {
    closeSync(fd);
  }
}

/**
 * One autocommit INSERT made durable: with `synchronous=FULL` SQLite fsyncs the WAL inside the
 * commit; with `wal` the commit runs at NORMAL and the -wal file is fdatasync'd after it through
 * a descriptor of its own, as Berth's store does (storage/wal-sync.ts). Both hold the database in
 * exclusive locking mode, as the store does: no shared-memory index, no lock calls per commit.
 */
async function sqliteFloor(dir: string, mode: 'full' | 'wal'): Promise<number[]> {
  const path = join(dir, `floors-${mode}.db`);
  const db = new Database(path);
  let walFd: number | null = null;
  try {
    db.pragma('locking_mode = EXCLUSIVE'); // before WAL mode, as in the store
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${mode === 'full' ? 'FULL' : 'NORMAL'}`);
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)');
    const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
    const body = Buffer.alloc(256, 0x5a);
    if (mode === 'full') return await timeEach(DISK_WARMUP, DISK_SAMPLES, () => insert.run(body));
    const fd = (walFd = openSync(`${path}-wal`, 'r+'));
    return await timeEach(DISK_WARMUP, DISK_SAMPLES, () => {
      insert.run(body);
      fdatasyncSync(fd);
    });
  } finally {
    if (walFd !== null) closeSync(walFd);
    db.close();
  }
}

/**
 * µs per message of each call of `consumePage`, which reads and removes one page of stored
 * messages and returns how many; stops at the first call that finds none (not counted).
 */
function timePages(consumePage: () => number): number[] {
  const samples: number[] = [];
  for (;;) {
    const t0 = process.hrtime.bigint();
    const consumed = consumePage();
    if (consumed === 0) return samples;
    samples.push(Number(process.hrtime.bigint() - t0) / 1000 / consumed);
  }
}

const MIGRATIONS_DIR = new URL('../../storage/migrations/', import.meta.url);

/**
 * µs per message of each page: read CONSUME_PAGE rows (with bodies) after the last seq, then delete
 * them in one transaction. The schema is Berth's own (its migrations, applied in order), and acks
 * commit with synchronous=NORMAL there too (no fsync: a lost ack only redelivers), so this is the
 * storage floor under a consumed message.
 */
function consumeFloor(dir: string): number[] {
  const db = new Database(join(dir, 'consume.db'));
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    for (const file of readdirSync(MIGRATIONS_DIR).filter((name) => name.endsWith('.sql')).sort()) {
      db.exec(readFileSync(new URL(file, MIGRATIONS_DIR), 'utf8'));
    }
    const insert = db.prepare(
      `INSERT INTO messages (id, queue_id, seq, state, priority, ready_at, delivery_count, message_id, published_at, body)
       VALUES (?, 1, ?, 0, 0, 0, 0, ?, ?, ?)`,
    );
    const body = Buffer.alloc(256, 0x5a);
    db.transaction(() => {
      for (let i = 1; i <= CONSUME_ROWS; i++) insert.run(i, i, `m-${i}`, Date.now(), body);
    })();
    const read = db
      .prepare(
        `SELECT id, seq, message_id, headers, body, delivery_count, published_at, expires_at FROM messages
         WHERE queue_id = 1 AND state = 0 AND priority = 0 AND seq > ? ORDER BY seq LIMIT ?`,
      )
      .raw(true);
    const remove = db.prepare('DELETE FROM messages WHERE id BETWEEN ? AND ?');
    const removePage = db.transaction((first: number, last: number) => remove.run(first, last));
    let afterSeq = 0;
    return timePages(() => {
      const rows = read.all(afterSeq, CONSUME_PAGE) as Array<[number, number]>;
      if (rows.length === 0) return 0;
      removePage(rows[0]![0], rows[rows.length - 1]![0]);
      afterSeq = rows[rows.length - 1]![1];
      return rows.length;
    });
  } finally {
    db.close();
  }
}

/**
 * µs per message of each page, through Berth's store: `loadReady` of CONSUME_PAGE messages, then
 * the commit of their removal. The messages were written 1,000 to a commit, as a publisher with
 * 1,000 in flight sends them, so their bodies are in body runs.
 */
function storeConsumeFloor(dir: string): number[] {
  const store = openSqliteStore({ path: join(dir, 'store-consume.db') });
  try {
    const queueId = store.declareQueue('floor', {}).queue.id;
    const body = Buffer.alloc(256, 0x5a);
    for (let written = 0; written < CONSUME_ROWS; written += 1000) {
      const enqueue = Array.from({ length: 1000 }, (_, i) => ({
        queueId, priority: 0, messageId: `m-${written + i}`, headers: null, body, publishedAt: Date.now(), expiresAt: null, readyAt: 0,
      }));
      store.write({ ...emptyBatch(), enqueue });
    }
    let afterSeq = 0;
    return timePages(() => {
      const page = store.loadReady({ queueId, priority: 0, afterSeq, limit: CONSUME_PAGE });
      if (page.length === 0) return 0;
      store.write({ ...emptyBatch(), remove: page.map((m) => m.id) });
      afterSeq = page[page.length - 1]!.seq;
      return page.length;
    });
  } finally {
    store.close();
  }
}

/** Replies to each message once its bytes are in a SQLite table and the log is fdatasync'd. */
function durableReplier(dir: string, kind: string): (data: Buffer) => void {
  const path = join(dir, `floors-echo-${kind}.db`);
  const db = new Database(path);
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)');
  const insert = db.prepare('INSERT INTO t (body) VALUES (?)');
  // The CREATE TABLE's commit created the -wal, as in sqliteFloor.
  const walFd = openSync(`${path}-wal`, 'r+');
  return (data) => {
    insert.run(data);
    fdatasyncSync(walFd);
  };
}

/** Child side: an echo server of the given kind; its port goes to the parent over IPC. */
function echoServer(kind: string, dir: string | undefined): void {
  if (kind === 'ws-poll' || kind === 'ws-durable-poll') keepPolling();
  if (kind === 'ws-durable' || kind === 'ws-durable-poll') {
    const persist = durableReplier(dir!, kind);
    // A confirm-sized reply, as a broker's to a publish.
    const reply = Buffer.alloc(CONFIRM_BYTES, 0x5a);
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss.on('connection', (ws) => ws.on('message', (data: Buffer) => {
      persist(data);
      ws.send(reply);
    }));
    wss.on('listening', () => process.send!({ port: (wss.address() as { port: number }).port }));
  } else if (kind === 'ws' || kind === 'ws-poll') {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
    wss.on('listening', () => process.send!({ port: (wss.address() as { port: number }).port }));
  } else {
    const server = createServer((sock) => {
      sock.setNoDelay(true);
      sock.on('data', (d) => sock.write(d));
    });
    server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as { port: number }).port }));
  }
  // An orphaned echo server would keep the machine busy; die with the parent.
  process.on('disconnect', () => process.exit(0));
}

/** An event loop that never sleeps: a pending immediate makes libuv poll with a zero timeout. */
function keepPolling(): void {
  const poll = (): void => {
    setImmediate(poll);
  };
  poll();
}

type EchoKind = 'ws' | 'ws-poll' | 'ws-durable' | 'ws-durable-poll' | 'tcp';

async function startEcho(kind: EchoKind, dir?: string): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(import.meta.url), ['--echo-server', kind, ...(dir === undefined ? [] : [dir])], { stdio: 'inherit' });
  const [msg] = (await once(child, 'message')) as [{ port: number }];
  return { child, port: msg.port };
}

async function stopEcho(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function wsFloor(kind: Exclude<EchoKind, 'tcp'> = 'ws', dir?: string): Promise<number[]> {
  const { child, port } = await startEcho(kind, dir);
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    await once(ws, 'open');
    let resolve: () => void = () => {};
    ws.on('message', () => resolve());
    const durable = kind === 'ws-durable' || kind === 'ws-durable-poll';
    const payload = Buffer.alloc(durable ? PUBLISH_BYTES : RTT_BYTES, 0x5a);
    const [warmup, count] = durable ? [DISK_WARMUP, DISK_SAMPLES] : [RTT_WARMUP, RTT_SAMPLES];
    const samples = await timeEach(warmup, count, () => new Promise<void>((r) => {
      resolve = r;
      ws.send(payload);
    }));
    const closed = once(ws, 'close');
    ws.close();
    await closed;
    return samples;
  } finally {
    await stopEcho(child);
  }
}

async function tcpFloor(): Promise<number[]> {
  const { child, port } = await startEcho('tcp');
  try {
    const sock: Socket = tcpConnect(port, '127.0.0.1');
    await once(sock, 'connect');
    sock.setNoDelay(true);
    // TCP has no message boundaries: a round trip ends when all 300 bytes are back.
    let pending = 0;
    let resolve: () => void = () => {};
    sock.on('data', (d) => {
      pending -= d.length;
      if (pending <= 0) resolve();
    });
    const payload = Buffer.alloc(RTT_BYTES, 0x5a);
    const samples = await timeEach(RTT_WARMUP, RTT_SAMPLES, () => new Promise<void>((r) => {
      resolve = r;
      pending = RTT_BYTES;
      sock.write(payload);
    }));
    sock.destroy();
    return samples;
  } finally {
    await stopEcho(child);
  }
}

/** Runs `measure` while a second process keeps its event loop polling. */
async function whilePolling<T>(measure: () => Promise<T>): Promise<T> {
  const child = fork(fileURLToPath(import.meta.url), ['--poll'], { stdio: 'inherit' });
  await once(child, 'message');
  try {
    return await measure();
  } finally {
    await stopEcho(child);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-floors-'));
  let rows: Row[];
  try {
    rows = [
      row('write 4 KiB + fdatasync', await syncFloor(dir, 'fdatasync', fdatasyncSync)),
      row('write 4 KiB + fsync', await syncFloor(dir, 'fsync', fsyncSync)),
      row('SQLite INSERT 256 B, WAL + synchronous=FULL (autocommit)', await sqliteFloor(dir, 'full')),
      row('SQLite INSERT 256 B, WAL + synchronous=NORMAL, then fdatasync of the -wal file (as the store does)', await sqliteFloor(dir, 'wal')),
      row(`WebSocket round trip ${RTT_BYTES} B, 2 processes, loopback`, await wsFloor()),
      row(`TCP round trip ${RTT_BYTES} B, 2 processes, loopback, nodelay`, await tcpFloor()),
      row(`WebSocket round trip ${RTT_BYTES} B, 2 processes, loopback, echo process polling`, await wsFloor('ws-poll')),
      row(
        `WebSocket round trip, ${PUBLISH_BYTES} B out and ${CONFIRM_BYTES} B back, the echo process making each message durable first (SQLite INSERT + fdatasync of the -wal)`,
        await wsFloor('ws-durable', dir),
      ),
      row('write 4 KiB + fdatasync, while another process polls', await whilePolling(() => syncFloor(dir, 'fdatasync-polled', fdatasyncSync))),
      row(
        `The same durable round trip with the echo process polling between messages, as the broker does (the sending process asleep)`,
        await wsFloor('ws-durable-poll', dir),
      ),
      row(`SQLite read back + delete of a stored 256 B message in its row, pages of ${CONSUME_PAGE} (µs per message)`, consumeFloor(dir)),
      row(`Berth's store: loadReady + removal of a stored 256 B message, bodies in runs, pages of ${CONSUME_PAGE} (µs per message)`, storeConsumeFloor(dir)),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const us = (n: number): string => n.toFixed(1);
  const ceiling = (r: Row): string => `${Math.round(1e6 / r.p50).toLocaleString('en-US')} msgs/s`;
  const [fdatasync, , sqlite, sqliteWal, ws, , wsPolled, wsDurable, fdatasyncPolled, wsDurablePolled, consume, storeConsume] = rows as [
    Row, Row, Row, Row, Row, Row, Row, Row, Row, Row, Row, Row,
  ];
  const md = [
    `# Berth physical floors${quick ? ' (quick)' : ''}`,
    '',
    `${new Date().toISOString()}; ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length} CPUs, Node ${process.version}; files in ${tmpdir()}.`,
    '',
    '| what | p50 µs | p99 µs | samples |',
    '| --- | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.what} | ${us(r.p50)} | ${us(r.p99)} | ${r.n} |`),
    '',
    `- fdatasync / SQLite durable commit: a publish confirmed one at a time (w2) waits for at least one of these: ` +
      `one-at-a-time publish rate ≤ 1e6 / p50 per second — ≤ ${ceiling(fdatasync)} (fdatasync), ≤ ${ceiling(sqlite)} (SQLite FULL commit), ` +
      `≤ ${ceiling(sqliteWal)} (NORMAL commit + fdatasync of the log, Berth's path).`,
    `- Durable round trip: the whole of a publish confirmed one at a time, less the broker (no protocol, engine or queue), with both ` +
      `processes asleep between messages as they are in w2: ${us(wsDurable.p50)} µs at the median and ${us(wsDurable.mean)} µs on average, ` +
      // A rate is messages over the sum of their times: the mean, tail included, bounds it.
      `so a one-at-a-time rate of ≤ ${Math.round(1e6 / wsDurable.mean).toLocaleString('en-US')} msgs/s. The median is ` +
      `${us(wsDurable.p50 - sqliteWal.p50 - ws.p50)} µs more than the commit and the round trip measured apart: a process woken after a longer sleep wakes slower. ` +
      `With the echo process polling between messages, as \`--busy-poll-us\` has the broker do, it takes ${us(wsDurablePolled.p50)} µs at the median and ` +
      `${us(wsDurablePolled.mean)} on average (≤ ${Math.round(1e6 / wsDurablePolled.mean).toLocaleString('en-US')} msgs/s): the publisher still sleeps, and the sync's own wait still idles the echo's CPU.`,
    `- WebSocket round trip: a consumer at prefetch 1 (w3-p1) needs one round trip per message ` +
      `(deliver → ack → next deliver): rate ≤ 1e6 / p50 — ≤ ${ceiling(ws)}.`,
    `- Wake-up: with the echo process polling instead of sleeping the round trip takes ${us(wsPolled.p50)} µs, not ${us(ws.p50)}: ` +
      `the ${us(ws.p50 - wsPolled.p50)} µs between them is the kernel waking a sleeping process, which \`--busy-poll-us\` saves the broker's side of each round trip.`,
    `- Polling's cost to a commit: fdatasync takes ${us(fdatasyncPolled.p50)} µs while another process polls, ${us(fdatasync.p50)} µs otherwise.`,
    `- Storage under a consumed message: reading it back and deleting it takes ${us(consume.p50)} µs of one core at the median page and ` +
      // Pages are all the same size, so the mean of their per-message costs is the whole run's.
      `${us(consume.mean)} µs on average (WAL checkpoints make the slow pages), before any network work: a broker thread that did ` +
      `that and nothing else would top out at ${Math.round(1e6 / consume.mean).toLocaleString('en-US')} msgs/s (w3 at prefetch 1000 is bound by the broker's CPU). ` +
      `Berth's store, which keeps the bodies of a commit in runs, takes ${us(storeConsume.p50)} µs at the median page and ${us(storeConsume.mean)} on average ` +
      `for the same (its own code included), a ceiling of ${Math.round(1e6 / storeConsume.mean).toLocaleString('en-US')} msgs/s.`,
    '',
  ].join('\n');
  process.stdout.write(md);
  const out = new URL('../../bench/results/', import.meta.url);
  mkdirSync(out, { recursive: true });
  writeFileSync(new URL('floors.md', out), md);
}

const echoAt = process.argv.indexOf('--echo-server');
if (echoAt >= 0) {
  echoServer(process.argv[echoAt + 1] ?? 'tcp', process.argv[echoAt + 2]);
} else if (process.argv.includes('--poll')) {
  keepPolling();
  process.send!({ polling: true });
  process.on('disconnect', () => process.exit(0));
} else if (process.argv.includes('--help') || process.argv.includes('-h')) {
  // Said before anything runs: a run rewrites bench/results/floors.md.
  console.log(
    'npm run bench:floors [-- --quick]\n\nWhat no broker can beat on this host (disk sync, loopback round trip, SQLite under a message);\n' +
      'prints a markdown table and writes bench/results/floors.md. --quick takes a tenth of the samples and a fifth of the stored rows.',
  );
} else {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
