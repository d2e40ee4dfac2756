/**
 * Timing tolerances of the broker's time-based rules, measured end to end
 * against a spawned `berth serve`:
 *   - ETA lateness: delivery time − notBefore, for delayed messages;
 *   - lease expiry lateness: redelivery time − the first delivery's leaseExpiresAt.
 * Client clock = broker clock (same machine). Prints a markdown table and writes
 * bench/results/timing.md. Run: `npm run build && node dist/bench/timing.js [--quick]`.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Message } from '../clients/index.js';
import { spawnServer } from '../test/helpers/server.js';

const quick = process.argv.includes('--quick');
const ETA_MESSAGES = quick ? 100 : 1000;
const LEASES = quick ? 50 : 300;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function summary(values: number[]): { p50: number; p99: number; max: number; n: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1]!, n: sorted.length };
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'berth-timing-'));
  const server = await spawnServer(dataDir);
  try {
    const conn = await connect(server.url);

    // ETA: delays spread over 0.2–2 s, all published at once; one consumer with room for all.
    await conn.assertQueue('eta', { visibilityTimeoutMs: 100 });
    const due = new Map<string, number>();
    const eta: number[] = [];
    await conn.consume('eta', (m) => {
      eta.push(Date.now() - due.get(m.text())!);
    }, { prefetch: 1000 });
    const start = Date.now();
    await Promise.all(
      Array.from({ length: ETA_MESSAGES }, (_, i) => {
        const notBefore = start + 200 + Math.floor((1800 * i) / ETA_MESSAGES);
        due.set(`m${i}`, notBefore);
        return conn.publish('eta', `m${i}`, { notBefore });
      }),
    );
    const etaDeadline = Date.now() + 30_000;
    while (eta.length < ETA_MESSAGES && Date.now() < etaDeadline) await new Promise((r) => setTimeout(r, 50));

    // Leases: messages held past a 300 ms visibility timeout by one consumer, redelivered to another.
    await conn.assertQueue('lease', { visibilityTimeoutMs: 300 });
    const holder = await connect(server.url);
    const expiresAt = new Map<string, number>();
    const held = await holder.consume('lease', (m: Message) => {
      expiresAt.set(m.text(), m.leaseExpiresAt);
      return new Promise(() => {}); // never settles
    }, { prefetch: LEASES });
    await Promise.all(Array.from({ length: LEASES }, (_, i) => conn.publish('lease', `l${i}`)));
    const leaseDeadline = Date.now() + 10_000;
    while (expiresAt.size < LEASES && Date.now() < leaseDeadline) await new Promise((r) => setTimeout(r, 10));
    await held.cancel(); // still holds its deliveries, takes no more: redeliveries go to the taker
    const lease: number[] = [];
    const taker = await connect(server.url);
    await taker.consume('lease', (m) => {
      if (m.redelivered) lease.push(Date.now() - expiresAt.get(m.text())!);
    }, { prefetch: LEASES });
    while (lease.length < LEASES && Date.now() < leaseDeadline + 10_000) await new Promise((r) => setTimeout(r, 20));
    await Promise.all([conn.close(), holder.close(), taker.close()]);

    const e = summary(eta);
    const l = summary(lease);
    const fmt = (n: number): string => `${n} ms`;
    const md = [
      `# Berth timing tolerances${quick ? ' (quick)' : ''}`,
      '',
      `${new Date().toISOString()}, Node ${process.version}; broker and client on one machine.`,
      '',
      '| rule | samples | p50 | p99 | max |',
      '| --- | ---: | ---: | ---: | ---: |',
      `| ETA lateness (delivery − notBefore) | ${e.n}/${ETA_MESSAGES} | ${fmt(e.p50)} | ${fmt(e.p99)} | ${fmt(e.max)} |`,
      `| lease expiry lateness (redelivery − leaseExpiresAt) | ${l.n}/${LEASES} | ${fmt(l.p50)} | ${fmt(l.p99)} | ${fmt(l.max)} |`,
      '',
      `Early deliveries (negative lateness) would show as a negative minimum: ETA min ${Math.min(...eta)} ms.`,
      '',
    ].join('\n');
    process.stdout.write(md);
    const out = new URL('../../bench/results/', import.meta.url);
    mkdirSync(out, { recursive: true });
    writeFileSync(new URL('timing.md', out), md);
  } finally {
    server.child.kill('SIGKILL');
    await server.exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
