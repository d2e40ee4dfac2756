/**
 * One cell = one case on one system, in its own client process (forked by
 * run.ts), so clients never share a process with a broker, state never leaks
 * between runs, and a hung client can be killed without hanging the bench.
 */
import { createAdapter, SkipError } from './peers/index.js';
import type { Adapter } from './peers/types.js';
import { DeadlineError, deadlineIn, errorMessage, withDeadline } from './lib/util.js';
import type { CellJob, CellResult, FromCell, ToCell } from './lib/ipc.js';
import { hostTicks, stealPct } from './lib/proc.js';
import { caseById, type CellContext } from './workloads.js';
import { scaleFor } from './scale.js';

const CONNECT_TIMEOUT_MS = 15_000;
/**
 * Steal at or above this is noted beside a round's figure. On the bench's 2-vCPU VMs steal read
 * 0–3% in quiet minutes and 5–39% (per cell) in the minutes when every system's figures sank (12-07).
 */
const NOTED_STEAL_PCT = 5;

function send(msg: FromCell): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined) {
      process.stdout.write(`${JSON.stringify(msg)}\n`);
      resolve();
      return;
    }
    process.send(msg, undefined, {}, () => resolve());
  });
}

let restartWaiter: ((msg: ToCell) => void) | null = null;

async function openAdapter(job: CellJob): Promise<Adapter> {
  const adapter = await createAdapter(job.system, job.endpoints);
  await withDeadline(adapter.open(), CONNECT_TIMEOUT_MS, `connecting to ${job.system}`);
  return adapter;
}

async function runJob(job: CellJob): Promise<CellResult> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const host0 = hostTicks();
  const result: CellResult = { status: 'ok', metrics: {}, brokerCpuPct: null, clientCpuPct: null, hostStealPct: null, notes: [], elapsedMs: 0 };
  let adapter: Adapter | null = null;
  try {
    adapter = await openAdapter(job);
    if (job.kind === 'probe') {
      result.version = await withDeadline(adapter.version(), 5000, 'reading the version');
    } else if (job.kind === 'cleanup') {
      await withDeadline(adapter.cleanupAll(job.queues), job.deadlineMs, 'cleaning up');
    } else {
      const def = caseById(job.caseId);
      if (def?.run === undefined) throw new Error(`case ${job.caseId} cannot run`);
      const ctx: CellContext = {
        system: job.system,
        mode: job.mode,
        scale: scaleFor(job.mode),
        endpoints: job.endpoints,
        adapter,
        deadline: deadlineIn(job.deadlineMs),
        restartBroker: null,
        log: (message) => process.stderr.write(`[cell ${job.caseId}/${job.system}] ${message}\n`),
      };
      if (job.system === 'berth') {
        ctx.restartBroker = async () => {
          await ctx.adapter.close();
          const reply = await new Promise<ToCell>((resolve) => {
            restartWaiter = resolve;
            void send({ type: 'restart-broker' });
          });
          if (reply.type !== 'broker-restarted') throw new Error(reply.type === 'broker-restart-failed' ? reply.error : 'unexpected reply');
          job.endpoints = { ...job.endpoints, berthUrl: reply.url, berthPid: reply.pid };
          ctx.endpoints = job.endpoints;
          ctx.adapter = await openAdapter(job);
          adapter = ctx.adapter;
          return { readyMs: reply.readyMs };
        };
      }
      const outcome = await def.run(ctx);
      result.metrics = outcome.metrics;
      result.brokerCpuPct = outcome.brokerCpuPct;
      result.notes = outcome.notes;
    }
  } catch (err) {
    result.status = err instanceof DeadlineError ? 'timeout' : err instanceof SkipError ? 'skipped' : 'error';
    result.error = errorMessage(err);
  } finally {
    const a = adapter as Adapter | null;
    if (a !== null) await withDeadline(a.close(), 5000, 'closing').catch(() => {});
  }
  const cpu = process.cpuUsage(cpu0);
  result.elapsedMs = performance.now() - t0;
  result.clientCpuPct = ((cpu.user + cpu.system) / 1000 / result.elapsedMs) * 100;
  result.hostStealPct = stealPct(host0, hostTicks());
  if (job.kind === 'case' && result.hostStealPct !== null && result.hostStealPct >= NOTED_STEAL_PCT) {
    result.notes.push(`host CPU steal ${result.hostStealPct.toFixed(0)}% during this cell`);
  }
  return result;
}

process.on('message', (msg: ToCell) => {
  if (msg.type === 'run') {
    void runJob(msg.job).then(async (result) => {
      await send({ type: 'result', result });
      process.exit(0);
    });
  } else if (restartWaiter !== null) {
    const w = restartWaiter;
    restartWaiter = null;
    w(msg);
  }
});
process.on('disconnect', () => process.exit(1));
// A library's stray rejection must not kill the cell silently.
process.on('unhandledRejection', (err) => process.stderr.write(`unhandled rejection: ${errorMessage(err)}\n`));
