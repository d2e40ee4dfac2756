/**
 * `npm run bench [-- --quick] [-- --only w1,w3] [-- --systems berth,jetstream] [-- --rounds N]`
 *
 * Runs every workload against Berth and the peers running on this machine's
 * loopback, in turns, and writes bench/results/latest.md and latest.json.
 * Nothing here asserts on speed; a cell that fails or times out is reported as
 * such and the run goes on.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { CellJob, CellResult, FromCell, ToCell } from './lib/ipc.js';
import { makeTempDir, removeDir, startBerth, startDurableRedis, type BerthProcess, type RedisProcess } from './lib/services.js';
import { errorMessage } from './lib/util.js';
import { SYSTEM_IDS, SYSTEM_LABELS, type Endpoints, type SystemId } from './peers/types.js';
import { emptyStatuses, evaluateTargets, fmt, renderMarkdown, type CaseReport, type Report, type RoundResult } from './report.js';
import { scaleFor, type Mode } from './scale.js';
import { casesFor, type CaseDef } from './workloads.js';

const CELL = fileURLToPath(new URL('./cell.js', import.meta.url));
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
/** Past a cell's own deadline, how long before its process is killed. */
const KILL_GRACE_MS = 20_000;

const HELP = `npm run bench [-- options]

  --quick              scaled-down smoke run (~1–2 min), one round
  --rounds <n>         rounds per workload (default 3; quick 1)
  --only <ids>         comma list of workloads or cases: w1,w2,w3,w3-p10,w4,w5,w6,w6-c10-ignore,w7,w8,w8-idle
  --systems <ids>      comma list of ${SYSTEM_IDS.join(', ')}
  --amqp <url>         RabbitMQ (default amqp://guest:guest@127.0.0.1:5672)
  --redis-port <n>     the machine's Redis for BullMQ (default 6379)
  --nats <host:port>   NATS with JetStream (default 127.0.0.1:4222)
  --out <dir>          where latest.md / latest.json go (default bench/results)
  --profile-berth <dir>  run berth serve with --cpu-prof, profiles written to <dir>
  --profile-clients <dir>  run every client process (cell) with --cpu-prof, profiles written to <dir>
  --profile-interval-us <n>  sampling interval of both profiles (default node's, 1000 µs)
`;

function parseOptions(): {
  mode: Mode;
  rounds: number | null;
  only: string[] | null;
  systems: SystemId[];
  amqp: string;
  redisPort: number;
  nats: string;
  out: string;
  profileDir: string | null;
  clientProfileDir: string | null;
  profileIntervalUs: number | null;
} {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      only: { type: 'string' },
      systems: { type: 'string' },
      amqp: { type: 'string', default: 'amqp://guest:guest@127.0.0.1:5672' },
      'redis-port': { type: 'string', default: '6379' },
      nats: { type: 'string', default: '127.0.0.1:4222' },
      out: { type: 'string', default: RESULTS_DIR },
      'profile-berth': { type: 'string' },
      'profile-clients': { type: 'string' },
      'profile-interval-us': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const systems = (values.systems?.split(',').map((s) => s.trim()) ?? [...SYSTEM_IDS]) as SystemId[];
  for (const s of systems) if (!SYSTEM_IDS.includes(s)) throw new Error(`--systems: unknown system "${s}"`);
  const rounds = values.rounds === undefined ? null : Number(values.rounds);
  if (rounds !== null && !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) throw new Error('--rounds must be an integer from 1 to 10');
  const profileIntervalUs = values['profile-interval-us'] === undefined ? null : Number(values['profile-interval-us']);
  if (profileIntervalUs !== null && !(Number.isInteger(profileIntervalUs) && profileIntervalUs >= 10)) {
    throw new Error('--profile-interval-us must be an integer of at least 10');
  }
  for (const [name, url] of [['--amqp', values.amqp], ['--nats', `nats://${values.nats}`]] as const) {
    const host = new URL(url).hostname;
    if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(host)) throw new Error(`${name}: the bench only targets the loopback, got ${host}`);
  }
  return {
    mode: values.quick ? 'quick' : 'full',
    rounds,
    only: values.only?.split(',').map((s) => s.trim()) ?? null,
    systems,
    amqp: values.amqp,
    redisPort: Number(values['redis-port']),
    nats: values.nats,
    out: values.out,
    profileDir: values['profile-berth'] ?? null,
    clientProfileDir: values['profile-clients'] ?? null,
    profileIntervalUs,
  };
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

// ---- running one cell ----------------------------------------------------------------

let currentCell: ChildProcess | null = null;
/** Node options of every cell process (`--profile-clients`). */
let cellExecArgv: string[] = [];

function runCell(job: CellJob, onRestart: () => Promise<ToCell>): Promise<CellResult> {
  const started = performance.now();
  return new Promise<CellResult>((resolve) => {
    const child = fork(CELL, [], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], execArgv: cellExecArgv });
    currentCell = child;
    const output: string[] = [];
    const keep = (d: Buffer): void => {
      output.push(d.toString());
      if (output.length > 50) output.shift();
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let result: CellResult | null = null;
    const finish = (r: CellResult): void => {
      clearTimeout(killer);
      currentCell = null;
      resolve(r);
    };
    const killer = setTimeout(() => {
      child.kill('SIGKILL');
    }, job.deadlineMs + KILL_GRACE_MS);
    child.on('message', (msg: FromCell) => {
      if (msg.type === 'result') result = msg.result;
      else if (msg.type === 'restart-broker') {
        void onRestart().then((reply) => {
          if (child.connected) child.send(reply);
        });
      }
    });
    child.on('exit', (code, sig) => {
      if (result !== null) return finish(result);
      const killed = sig === 'SIGKILL';
      const tailText = output.join('').trim().split('\n').slice(-3).join(' ');
      finish({
        status: killed ? 'timeout' : 'error',
        error: killed
          ? `killed after ${Math.round((performance.now() - started) / 1000)} s (deadline ${Math.round(job.deadlineMs / 1000)} s)`
          : `client process exited (${code ?? sig}) without a result${tailText === '' ? '' : `: ${tailText}`}`,
        metrics: {},
        brokerCpuPct: null,
        clientCpuPct: null,
        hostStealPct: null,
        notes: [],
        elapsedMs: performance.now() - started,
      });
    });
    child.send({ type: 'run', job } satisfies ToCell);
  });
}

/** The checkout the broker was built from: commit, and whether the work tree had changes. */
function berthVersion(): string {
  try {
    const cwd = fileURLToPath(new URL('../../', import.meta.url));
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd, encoding: 'utf8' }).trim() !== '';
    return `commit ${commit}${dirty ? ' + uncommitted changes' : ''} (dist/)`;
  } catch {
    return 'this checkout (dist/)';
  }
}

// ---- main --------------------------------------------------------------------------------

async function main(): Promise<void> {
  const opts = parseOptions();
  const scale = scaleFor(opts.mode);
  if (opts.rounds !== null) scale.rounds = opts.rounds;
  const startedAt = new Date();
  const t0 = performance.now();
  const selected = (c: CaseDef): boolean => opts.only === null || opts.only.includes(c.id) || opts.only.includes(c.workload);
  const cases = casesFor(scale).filter(selected);
  if (cases.length === 0) throw new Error(`--only ${opts.only?.join(',')} selects no workload`);

  const report: Report = {
    machine: { cores: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? '?', memGiB: totalmem() / 1024 ** 3, node: process.version, platform: `${process.platform} ${process.arch}`, loadAvgStart: loadavg()[0] ?? 0, loadAvgEnd: 0 },
    mode: opts.mode,
    rounds: scale.rounds,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    durationS: 0,
    systems: emptyStatuses().filter((s) => opts.systems.includes(s.id)),
    cases: [],
    targets: [],
  };
  const status = (id: SystemId) => report.systems.find((s) => s.id === id)!;
  const skip = (id: SystemId, reason: string): void => {
    const s = report.systems.find((x) => x.id === id);
    if (s !== undefined && s.state === 'ok') Object.assign(s, { state: 'skipped', reason });
  };

  log(`berth bench: ${opts.mode} mode, ${scale.rounds} round(s), ${cases.length} cases, systems: ${opts.systems.join(', ')}`);

  // Services the bench owns: the durable Redis now, Berth per workload.
  const interval = opts.profileIntervalUs === null ? [] : [`--cpu-prof-interval=${opts.profileIntervalUs}`];
  const berthNodeArgs = opts.profileDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`, ...interval];
  if (opts.clientProfileDir !== null) cellExecArgv = ['--cpu-prof', `--cpu-prof-dir=${opts.clientProfileDir}`, ...interval];
  let redis: RedisProcess | null = null;
  let berth: BerthProcess | null = null;
  let berthDir: string | null = null;
  const stopBerth = async (): Promise<void> => {
    if (berth !== null) await berth.stop().catch(() => {});
    berth = null;
    if (berthDir !== null) removeDir(berthDir);
    berthDir = null;
  };
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    currentCell?.kill('SIGKILL');
    await stopBerth();
    if (redis !== null) await redis.stop().catch(() => {});
  };
  // Ctrl-C, or a plain `kill`: either way the broker, the bench's own Redis and the running cell
  // go with the bench instead of running on.
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.on(signal, () => {
      log(`${signal}: stopping the processes the bench started`);
      void shutdown().then(() => process.exit(code));
    });
  }

  if (opts.systems.includes('bullmq-durable')) {
    try {
      redis = await startDurableRedis();
      log(`started redis-server (appendonly yes, appendfsync everysec) on 127.0.0.1:${redis.port}, pid ${redis.pid}`);
    } catch (err) {
      skip('bullmq-durable', `could not start redis-server: ${errorMessage(err)}`);
    }
  }
  const endpoints: Endpoints = {
    berthUrl: null,
    berthPid: null,
    amqpUrl: opts.amqp,
    redisPort: opts.redisPort,
    durableRedisPort: redis?.port ?? null,
    durableRedisPid: redis?.pid ?? null,
    natsServers: opts.nats,
  };

  // Probe the peers: an unreachable one is skipped, never faked.
  for (const id of opts.systems) {
    if (id === 'berth' || status(id).state !== 'ok') continue;
    const r = await runCell({ kind: 'probe', system: id, mode: opts.mode, endpoints, deadlineMs: 20_000 }, async () => ({ type: 'broker-restart-failed', error: 'n/a' }));
    if (r.status === 'ok') {
      if (r.version !== undefined) status(id).version = r.version;
      log(`  ${SYSTEM_LABELS[id]}: reachable (${r.version ?? '?'})`);
    } else {
      skip(id, `not reachable: ${r.error ?? r.status}`);
      log(`  ${SYSTEM_LABELS[id]}: skipped (${r.error ?? r.status})`);
    }
  }
  if (opts.systems.includes('berth')) status('berth').version = berthVersion();

  const restartBerth = async (): Promise<ToCell> => {
    if (berth === null || berthDir === null) return { type: 'broker-restart-failed', error: 'no Berth broker running' };
    try {
      await berth.stop();
      berth = await startBerth(berthDir, { nodeArgs: berthNodeArgs });
      endpoints.berthUrl = berth.url;
      endpoints.berthPid = berth.pid;
      return { type: 'broker-restarted', url: berth.url, pid: berth.pid, readyMs: berth.readyMs };
    } catch (err) {
      berth = null;
      return { type: 'broker-restart-failed', error: errorMessage(err) };
    }
  };

  let berthWorkload: string | null = null;
  for (const def of cases) {
    const rounds = def.run === undefined ? 0 : def.rounds(scale);
    const caseReport: CaseReport = { id: def.id, workload: def.workload, title: def.title, description: def.describe(scale), metrics: def.metrics, rounds, results: {} };
    if (def.notMeasurable !== undefined) caseReport.notMeasurable = def.notMeasurable;
    report.cases.push(caseReport);
    if (def.run === undefined) {
      log(`${def.id}: ${def.notMeasurable ?? 'not measurable'}`);
      continue;
    }
    const systems = opts.systems.filter((id) => def.systems === undefined || def.systems.includes(id));
    const group = def.brokerGroup ?? def.workload;
    // One Berth broker per workload, with a fresh data folder, as long-lived as the peers are within it.
    if (systems.includes('berth') && berthWorkload !== group) {
      await stopBerth();
      berthWorkload = group;
      berthDir = makeTempDir('berth-bench-data-');
      try {
        berth = await startBerth(berthDir, { nodeArgs: berthNodeArgs });
        endpoints.berthUrl = berth.url;
        endpoints.berthPid = berth.pid;
        log(`started berth serve for ${group}: ${berth.url}, pid ${berth.pid}, ready in ${fmt(berth.readyMs, 0)} ms`);
      } catch (err) {
        endpoints.berthUrl = null;
        endpoints.berthPid = null;
        log(`berth serve failed to start: ${errorMessage(err)}`);
      }
    }
    for (let round = 1; round <= rounds; round++) {
      for (const id of systems) {
        if (status(id).state !== 'ok') continue;
        const job: CellJob = { kind: 'case', caseId: def.id, system: id, mode: opts.mode, endpoints: { ...endpoints }, deadlineMs: def.deadlineMs(scale) };
        let result: CellResult;
        if (id === 'berth' && endpoints.berthUrl === null) {
          result = { status: 'error', error: 'berth serve is not running', metrics: {}, brokerCpuPct: null, clientCpuPct: null, hostStealPct: null, notes: [], elapsedMs: 0 };
        } else {
          result = await runCell(job, restartBerth);
        }
        (caseReport.results[id] ??= []).push({ ...result, round } satisfies RoundResult);
        const head = def.metrics[0]!;
        const figure = result.status === 'ok' ? `${fmt(result.metrics[head.key], head.digits)} ${head.unit}` : `${result.status.toUpperCase()}: ${result.error ?? ''}`;
        log(
          `${def.id} r${round} ${SYSTEM_LABELS[id].padEnd(22)} ${figure}${result.brokerCpuPct === null ? '' : `  (broker CPU ${fmt(result.brokerCpuPct, 0)}%)`}${result.hostStealPct === null ? '' : `  (host steal ${fmt(result.hostStealPct, 0)}%)`}  [${fmt(result.elapsedMs / 1000, 1)} s]`,
        );
      }
    }
  }
  await stopBerth();

  // Leave the peers as we found them: delete every queue, stream and key the bench made.
  const allQueues = [...new Set(cases.flatMap((c) => c.queues(scale)))];
  for (const id of opts.systems) {
    if (id === 'berth' || status(id).state !== 'ok') continue;
    const r = await runCell({ kind: 'cleanup', system: id, mode: opts.mode, endpoints, deadlineMs: 120_000, queues: allQueues }, async () => ({ type: 'broker-restart-failed', error: 'n/a' }));
    if (r.status !== 'ok') log(`clean-up of ${SYSTEM_LABELS[id]} failed: ${r.error ?? r.status}`);
  }
  if (redis !== null) await redis.stop();
  redis = null;

  report.finishedAt = new Date().toISOString();
  report.machine.loadAvgEnd = loadavg()[0] ?? 0;
  report.durationS = (performance.now() - t0) / 1000;
  report.targets = evaluateTargets(report);
  const markdown = renderMarkdown(report);
  mkdirSync(opts.out, { recursive: true });
  writeFileSync(join(opts.out, 'latest.md'), markdown);
  writeFileSync(join(opts.out, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\n${markdown}`);
  log(`\nwrote ${join(opts.out, 'latest.md')} and latest.json in ${fmt(report.durationS / 60, 1)} min`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${errorMessage(err)}\n`);
  process.exit(1);
});
