/**
 * The bench harness, end to end: `bench/run.js --quick` against Berth alone (the tests need no
 * other service), as CI's smoke run. It checks that every workload ran and was reported, never
 * how fast: speed is for `npm run bench` on a quiet machine.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { processAlive, tempDir, waitFor } from '../helpers/server.js';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

interface QuickReport {
  mode: string;
  cases: Array<{ id: string; notMeasurable?: string; metrics: Array<{ key: string }>; results: Record<string, Array<{ status: string; error?: string; metrics: Record<string, number> }>> }>;
  targets: Array<{ result: string }>;
}

describe('bench --quick', () => {
  it('runs every workload against Berth and writes the report', { timeout: 240_000 }, async (t) => {
    const out = tempDir(t, 'berth-bench-out-');
    await promisify(execFile)(process.execPath, [RUN, '--quick', '--systems', 'berth', '--out', out], { timeout: 200_000, maxBuffer: 16 * 1024 * 1024 });

    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8')) as QuickReport;
    assert.equal(report.mode, 'quick');
    const ids = report.cases.map((c) => c.id);
    for (const id of ['w1', 'w2', 'w3-p1', 'w3-p1000', 'w4', 'w5', 'w6-c10-results', 'w6-c100-ignore', 'w7', 'w8-fanin', 'w8-idle']) {
      assert.ok(ids.includes(id), `the report has ${id}`);
    }
    for (const c of report.cases) {
      if (c.notMeasurable !== undefined) continue;
      const rounds = c.results['berth'] ?? [];
      assert.ok(rounds.length >= 1, `${c.id} ran`);
      for (const r of rounds) {
        assert.equal(r.status, 'ok', `${c.id}: ${r.error ?? r.status}`);
        const headline = r.metrics[c.metrics[0]!.key];
        assert.ok(typeof headline === 'number' && Number.isFinite(headline) && headline > 0, `${c.id} has a figure: ${headline}`);
      }
    }
    // Targets are evaluated and shown, never asserted.
    assert.ok(report.targets.length > 0);
    assert.match(readFileSync(join(out, 'latest.md'), 'utf8'), /## Targets/);
  });

  it('stops the broker it started when it is killed with SIGTERM', { timeout: 60_000 }, async (t) => {
    const out = tempDir(t, 'berth-bench-out-');
    const bench = spawn(process.execPath, [RUN, '--quick', '--only', 'w7', '--systems', 'berth', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => bench.kill('SIGKILL'));
    let output = '';
    const brokerPid = await new Promise<number>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        const started = /started berth serve for \S+: \S+, pid (\d+)/.exec(output);
        if (started !== null) resolve(Number(started[1]));
      };
      bench.stdout.on('data', onData);
      bench.stderr.on('data', onData);
      bench.once('exit', () => reject(new Error(`the bench exited before starting Berth:\n${output}`)));
    });
    const exited = once(bench, 'exit');
    bench.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 143, output);
    await waitFor(() => !processAlive(brokerPid), { timeoutMs: 10_000, intervalMs: 50, what: `berth serve (pid ${brokerPid}) to go with the bench` });
  });
});
