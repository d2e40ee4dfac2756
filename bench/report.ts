/** Turns the collected cells into the markdown report and its JSON twin. */
import type { CellResult } from './lib/ipc.js';
import { median } from './lib/util.js';
import { SYSTEM_IDS, SYSTEM_LABELS, SYSTEM_NOTES, type SystemId } from './peers/types.js';
import type { Mode } from './scale.js';
import type { MetricDef } from './workloads.js';

export interface RoundResult extends CellResult {
  round: number;
}

export interface SystemStatus {
  id: SystemId;
  label: string;
  state: 'ok' | 'skipped';
  reason?: string;
  version?: string;
}

export interface CaseReport {
  id: string;
  workload: string;
  title: string;
  description: string;
  metrics: readonly MetricDef[];
  rounds: number;
  notMeasurable?: string;
  results: Partial<Record<SystemId, RoundResult[]>>;
}

export interface TargetResult {
  id: string;
  target: string;
  measured: string;
  pass: boolean | null;
}

export interface Report {
  machine: { cores: number; cpuModel: string; memGiB: number; node: string; platform: string; loadAvgStart: number; loadAvgEnd: number };
  mode: Mode;
  rounds: number;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  systems: SystemStatus[];
  cases: CaseReport[];
  targets: TargetResult[];
}

// ---- figures ---------------------------------------------------------------------

function okRounds(rows: readonly RoundResult[] | undefined): RoundResult[] {
  return (rows ?? []).filter((r) => r.status === 'ok');
}

/** Median of one metric over the rounds that succeeded, or null. */
export function medianOf(rows: readonly RoundResult[] | undefined, key: string): number | null {
  const values = okRounds(rows)
    .map((r) => r.metrics[key])
    .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return values.length === 0 ? null : median(values);
}

function rangeOf(rows: readonly RoundResult[] | undefined, key: string): [number, number] | null {
  const values = okRounds(rows)
    .map((r) => r.metrics[key])
    .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return values.length === 0 ? null : [Math.min(...values), Math.max(...values)];
}

export function fmt(value: number | null | undefined, digits: number): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function ratioText(berth: readonly RoundResult[] | undefined, peer: readonly RoundResult[] | undefined, key: string): string {
  const parts: string[] = [];
  for (const p of peer ?? []) {
    const b = (berth ?? []).find((r) => r.round === p.round);
    const bv = b?.status === 'ok' ? b.metrics[key] : null;
    const pv = p.status === 'ok' ? p.metrics[key] : null;
    parts.push(typeof bv === 'number' && typeof pv === 'number' && pv > 0 ? `${fmt(bv / pv, 2)}×` : '—');
  }
  return parts.length === 0 ? '—' : parts.join(' / ');
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

// ---- targets ---------------------------------------------------------------------

function caseOf(report: Report, id: string): CaseReport | undefined {
  return report.cases.find((c) => c.id === id);
}

/** The better of RabbitMQ's two queue types for a metric where higher is better. */
function bestRabbit(c: CaseReport, key: string): { value: number; label: string } | null {
  let best: { value: number; label: string } | null = null;
  for (const id of ['rabbitmq-classic', 'rabbitmq-quorum'] as const) {
    const v = medianOf(c.results[id], key);
    if (v !== null && (best === null || v > best.value)) best = { value: v, label: SYSTEM_LABELS[id] };
  }
  return best;
}

export function evaluateTargets(report: Report): TargetResult[] {
  const out: TargetResult[] = [];
  const berthOf = (c: CaseReport, key: string): number | null => medianOf(c.results.berth, key);
  const throughputVsRabbit = (id: string, label: string, alsoJetStream: boolean): void => {
    const c = caseOf(report, id);
    if (c === undefined) return;
    const b = berthOf(c, 'rate');
    const r = bestRabbit(c, 'rate');
    const js = alsoJetStream ? medianOf(c.results.jetstream, 'rate') : null;
    const parts: string[] = [`Berth ${fmt(b, 0)}/s`];
    let pass: boolean | null = null;
    if (b !== null && r !== null) {
      parts.push(`best RabbitMQ (${r.label}) ${fmt(r.value, 0)}/s = ${fmt(b / r.value, 2)}×`);
      pass = b >= 2 * r.value;
    } else parts.push('RabbitMQ: no figure');
    if (alsoJetStream) {
      if (b !== null && js !== null) {
        parts.push(`JetStream ${fmt(js, 0)}/s = ${fmt(b / js, 2)}×`);
        pass = pass === null ? null : pass && b > js;
      } else {
        parts.push('JetStream: no figure');
        pass = null;
      }
    }
    out.push({ id, target: label, measured: parts.join('; '), pass });
  };
  throughputVsRabbit('w1', 'w1 ≥ 2× RabbitMQ (best queue type)', false);
  throughputVsRabbit('w2', 'w2 ≥ 2× RabbitMQ', false);
  for (const c of report.cases.filter((x) => x.workload === 'w3')) {
    const prefetch = Number(c.id.slice(4));
    throughputVsRabbit(c.id, `w3 prefetch ${prefetch}: ≥ 2× RabbitMQ${prefetch >= 10 ? ' and ahead of JetStream' : ''}`, prefetch >= 10);
  }
  throughputVsRabbit('w4', 'w4 ≥ 2× RabbitMQ and ahead of JetStream', true);
  const w5 = caseOf(report, 'w5');
  if (w5 !== undefined) {
    const b = berthOf(w5, 'p99');
    const r = medianOf(w5.results['rabbitmq-classic'], 'p99');
    out.push({
      id: 'w5',
      target: 'w5 p99 no worse than RabbitMQ classic',
      measured: `Berth p99 ${fmt(b, 2)} ms; RabbitMQ classic p99 ${fmt(r, 2)} ms`,
      pass: b !== null && r !== null ? b <= r : null,
    });
  }
  // w6: the task layer against BullMQ, at the same worker concurrency; the faster of BullMQ's two deployments counts.
  for (const c of report.cases.filter((x) => x.workload === 'w6' && x.notMeasurable === undefined)) {
    const keep = c.id.endsWith('-results');
    const factor = keep ? 2 : 3;
    const concurrency = /^w6-c(\d+)-/.exec(c.id)?.[1] ?? '?';
    const b = berthOf(c, 'rate');
    const parts: string[] = [`Berth ${fmt(b, 0)}/s`];
    let best: number | null = null;
    for (const id of ['bullmq', 'bullmq-durable'] as const) {
      const v = medianOf(c.results[id], 'rate');
      if (v === null) continue;
      parts.push(`${SYSTEM_LABELS[id]} ${fmt(v, 0)}/s${b === null ? '' : ` = ${fmt(b / v, 2)}×`}`);
      if (best === null || v > best) best = v;
    }
    if (best === null) parts.push('BullMQ: no figure');
    out.push({
      id: c.id,
      target: `w6 concurrency ${concurrency}, ${keep ? 'results kept' : 'ignoreResult'}: ≥ ${factor}× BullMQ (the faster deployment)`,
      measured: parts.join('; '),
      pass: b !== null && best !== null ? b >= factor * best : null,
    });
  }
  const w7 = caseOf(report, 'w7');
  if (w7 !== undefined) {
    const rss = berthOf(w7, 'rssFull');
    const ready = berthOf(w7, 'readyMs');
    out.push({ id: 'w7-rss', target: 'w7 Berth RSS < 200 MB with the backlog stored', measured: `${fmt(rss, 0)} MB`, pass: rss === null ? null : rss < 200 });
    out.push({ id: 'w7-ready', target: 'w7 Berth ready < 2 s after a restart with the backlog stored', measured: `${fmt(ready, 0)} ms`, pass: ready === null ? null : ready < 2000 });
  }
  const idle = caseOf(report, 'w8-idle');
  if (idle !== undefined) {
    const kb = berthOf(idle, 'perConnKb');
    out.push({ id: 'w8', target: 'w8 Berth memory per idle connection < 50 KB', measured: `${fmt(kb, 1)} KB`, pass: kb === null ? null : kb < 50 });
  }
  return out;
}

// ---- markdown ---------------------------------------------------------------------

function passText(pass: boolean | null): string {
  return pass === null ? 'n/a' : pass ? '**pass**' : '**FAIL**';
}

function caseTable(report: Report, c: CaseReport): string[] {
  const lines: string[] = [`### ${c.title}`, '', c.description, ''];
  if (c.notMeasurable === undefined) lines.push(`${c.rounds} round${c.rounds === 1 ? '' : 's'}.`, '');
  if (c.notMeasurable !== undefined) {
    lines.push(`**${c.notMeasurable}**`, '');
    return lines;
  }
  const [head, ...rest] = c.metrics;
  if (head === undefined) return lines;
  const headUnit = head.unit === '' ? '' : ` (${head.unit})`;
  const cols = [
    'system',
    `${head.label}${headUnit}, median`,
    'min–max',
    'broker CPU %',
    `Berth/peer per round${head.better === 'lower' ? ' (lower = Berth better)' : ''}`,
    ...rest.map((m) => `${m.label}${m.unit === '' ? '' : ` (${m.unit})`}, median (min–max)`),
    'notes',
  ];
  lines.push(`| ${cols.join(' | ')} |`, `|${cols.map((_, i) => (i === 0 || i === cols.length - 1 ? ' --- ' : ' ---: ')).join('|')}|`);
  for (const sys of report.systems) {
    const rows = c.results[sys.id];
    if (sys.state === 'skipped') {
      lines.push(`| ${sys.label} | skipped | | | | ${rest.map(() => '').join(' | ')}${rest.length > 0 ? ' | ' : ''}${escapeCell(sys.reason ?? '')} |`);
      continue;
    }
    if (rows === undefined) continue;
    const range = rangeOf(rows, head.key);
    const cpu = okRounds(rows)
      .map((r) => r.brokerCpuPct)
      .filter((v): v is number => v !== null);
    const notes: string[] = [];
    for (const r of rows) {
      if (r.status !== 'ok') notes.push(`r${r.round} ${r.status}: ${r.error ?? ''}`);
      for (const n of r.notes) notes.push(`r${r.round}: ${n}`);
    }
    const cells = [
      sys.id === 'berth' ? `**${sys.label}**` : sys.label,
      fmt(medianOf(rows, head.key), head.digits),
      range === null ? '—' : `${fmt(range[0], head.digits)}–${fmt(range[1], head.digits)}`,
      cpu.length === 0 ? '—' : fmt(median(cpu), 0),
      sys.id === 'berth' ? '—' : ratioText(c.results.berth, rows, head.key),
      ...rest.map((m) => {
        const med = medianOf(rows, m.key);
        const rg = rangeOf(rows, m.key);
        if (med === null || rg === null) return '—';
        return rg[0] === rg[1] ? fmt(med, m.digits) : `${fmt(med, m.digits)} (${fmt(rg[0], m.digits)}–${fmt(rg[1], m.digits)})`;
      }),
      escapeCell(notes.join('; ')),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  const targets = report.targets.filter((t) => t.id === c.id || t.id.startsWith(`${c.id}-`) || (c.id === 'w8-idle' && t.id === 'w8'));
  lines.push('');
  for (const t of targets) lines.push(`Target — ${t.target}: ${t.measured} → ${passText(t.pass)}`, '');
  return lines;
}

export function renderMarkdown(report: Report): string {
  const m = report.machine;
  const lines: string[] = [
    `# Berth benchmark — ${report.mode} run`,
    '',
    `Machine: ${m.cores} cores (${m.cpuModel}), ${fmt(m.memGiB, 1)} GiB RAM, Node ${m.node}, ${m.platform}; 1-min load average ${fmt(m.loadAvgStart, 2)} at the start, ${fmt(m.loadAvgEnd, 2)} at the end. ` +
      `Run ${report.startedAt} → ${report.finishedAt} (${fmt(report.durationS / 60, 1)} min). ` +
      `Mode: **${report.mode}**, ${report.rounds} round${report.rounds === 1 ? '' : 's'} of w1–w6 (each table says how many it had); in every round Berth runs first, then each peer in turn.`,
    '',
    'Everything runs on 127.0.0.1. Berth is `node dist/bin/berth.js serve --port 0 --data <tmpdir>` (default durability: fsync before confirm), one broker per workload; every client runs in a separate process (one fresh process per cell). ' +
      'Bodies are 256 bytes; queues durable and messages persistent everywhere. Broker CPU is utime+stime of the broker process (beam.smp, redis-server, nats-server, berth) over the measured phase, in % of one core. ' +
      'A peer\'s RSS is its whole server process (RabbitMQ classic and quorum share one beam.smp; the machine\'s Redis and NATS may hold other data), so compare its growth more than its level. ' +
      'Measured phases stop at their message count or their time cap, whichever comes first; a capped run says so in its notes. ' +
      'On a virtual machine, a round during which the hypervisor gave 5% or more of the host\'s CPU time to other machines (steal, from /proc/stat, over the whole cell) says so in its notes: figures from such rounds sink for every system. ' +
      '"Berth/peer per round" divides Berth\'s headline figure by the peer\'s from the same round. Targets are shown, never asserted: the bench does not fail on speed.',
    '',
  ];
  if (report.mode === 'quick') {
    lines.push('> **Quick mode**: every count is scaled down 10–100× and there is one round: a smoke test of every workload and peer, not a measurement. Pass/fail below is indicative only.', '');
  }
  lines.push('## Systems', '', '| system | version | status | durability of what is measured |', '| --- | --- | --- | --- |');
  for (const s of report.systems) {
    lines.push(`| ${s.label} | ${escapeCell(s.version ?? '—')} | ${s.state === 'ok' ? 'measured' : `skipped: ${escapeCell(s.reason ?? '')}`} | ${escapeCell(SYSTEM_NOTES[s.id])} |`);
  }
  lines.push('', "JetStream's default does not fsync before acknowledging, so its publish figures are not durable ones; BullMQ on the machine's Redis (appendonly no) is not durable either.", '');
  lines.push('## Targets', '', '| target | measured | result |', '| --- | --- | --- |');
  for (const t of report.targets) lines.push(`| ${escapeCell(t.target)} | ${escapeCell(t.measured)} | ${passText(t.pass)} |`);
  lines.push('', '## Workloads', '');
  for (const c of report.cases) lines.push(...caseTable(report, c));
  return `${lines.join('\n')}\n`;
}

export function emptyStatuses(): SystemStatus[] {
  return SYSTEM_IDS.map((id) => ({ id, label: SYSTEM_LABELS[id], state: 'ok' }));
}
