/**
 * How big each workload is in full and quick mode.
 *
 * Every measured throughput phase stops at its message count or at its time cap,
 * whichever comes first (a capped run reports messages done / time and says so
 * in its notes): the cap only binds the slower systems, and keeps three rounds
 * of six systems well under 30 minutes on a 2-core machine.
 */

export type Mode = 'full' | 'quick';

export interface Scale {
  rounds: number;
  w1: { count: number; inFlight: number; capMs: number };
  /** `warmup`: publishes made first on the same connection and not timed. */
  w2: { count: number; warmup: number; capMs: number };
  w3: { count: number; prefetches: readonly number[]; capMs: number };
  w4: { count: number; inFlight: number; prefetch: number; capMs: number };
  w5: { rate: number; seconds: number; warmup: number; prefetch: number };
  /** Tasks per run; worker concurrencies; cap of the enqueue phase and of the processing phase, each. */
  w6: { count: number; inFlight: number; concurrencies: readonly number[]; capMs: number };
  w7: { count: number; drainPrefetch: number; rounds: number; drainCapMs: number };
  w8: {
    queues: number;
    consumersPerQueue: number;
    prefetch: number;
    producers: number;
    messages: number;
    inFlight: number;
    capMs: number;
    /** Rounds of the fan-in case (a capacity test: one round in full mode). */
    rounds: number;
    idleConnections: number;
    idleProcesses: number;
    idleRounds: number;
    /** Wait before the baseline RSS and after the last connection opened. */
    idleSettleMs: number;
  };
}

export const FULL: Scale = {
  rounds: 3,
  w1: { count: 100_000, inFlight: 1000, capMs: 20_000 },
  // Every cell is a fresh client process, and Berth's broker is fresh at each workload: the first
  // ~1,500 one-at-a-time publishes ran with the client's code not yet optimised (its JavaScript
  // took ~50-130 µs a publish, then ~15-25 µs; with --no-opt it stayed at ~50), a third of a 5k run.
  // The peers' servers are long-running. 2,000 untimed publishes first, for every system.
  w2: { count: 5_000, warmup: 2_000, capMs: 20_000 },
  // 100k as the issue asks. Every cell is a fresh client process: with 20k, a fast system's cell
  // lasted ~0.3 s, much of it the client's JIT warming up, and rounds varied by ±25%. The 4 s cap
  // binds the slower systems (and every system at prefetch 1), so this adds ~6 minutes of filling.
  w3: { count: 100_000, prefetches: [1, 10, 100, 1000], capMs: 4_000 },
  w4: { count: 100_000, inFlight: 1000, prefetch: 100, capMs: 10_000 },
  w5: { rate: 1000, seconds: 10, warmup: 500, prefetch: 100 },
  w6: { count: 50_000, inFlight: 1000, concurrencies: [1, 10, 100], capMs: 30_000 },
  // w7 and w8 are capacity tests (1M stored; 1000 consumers; 5000 connections): one round each;
  // w1–w6 get three rounds. The full run takes ~32 minutes, w6 ~11 of them.
  w7: { count: 1_000_000, drainPrefetch: 1000, rounds: 1, drainCapMs: 10_000 },
  w8: {
    queues: 100,
    consumersPerQueue: 10,
    prefetch: 10,
    producers: 4,
    messages: 100_000,
    inFlight: 1000,
    capMs: 10_000,
    rounds: 1,
    idleConnections: 5000,
    idleProcesses: 5,
    idleRounds: 1,
    idleSettleMs: 3000,
  },
};

export const QUICK: Scale = {
  rounds: 1,
  w1: { count: 5_000, inFlight: 1000, capMs: 3000 },
  w2: { count: 300, warmup: 100, capMs: 3000 },
  w3: { count: 500, prefetches: [1, 10, 100, 1000], capMs: 1000 },
  w4: { count: 5_000, inFlight: 1000, prefetch: 100, capMs: 3000 },
  w5: { rate: 1000, seconds: 1, warmup: 200, prefetch: 100 },
  w6: { count: 5_000, inFlight: 1000, concurrencies: [1, 10, 100], capMs: 5000 },
  w7: { count: 5_000, drainPrefetch: 1000, rounds: 1, drainCapMs: 2000 },
  w8: {
    queues: 10,
    consumersPerQueue: 3,
    prefetch: 10,
    producers: 2,
    messages: 2_000,
    inFlight: 1000,
    capMs: 2000,
    rounds: 1,
    idleConnections: 300,
    idleProcesses: 2,
    idleRounds: 1,
    idleSettleMs: 500,
  },
};

export function scaleFor(mode: Mode): Scale {
  // A copy: the orchestrator may change rounds.
  return structuredClone(mode === 'quick' ? QUICK : FULL);
}
