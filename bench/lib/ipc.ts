/** Messages between the orchestrator (run.ts) and a cell process (cell.ts). */
import type { Endpoints, SystemId } from '../peers/types.js';
import type { Mode } from '../scale.js';

export type CellJob =
  | { kind: 'case'; caseId: string; system: SystemId; mode: Mode; endpoints: Endpoints; deadlineMs: number }
  | { kind: 'probe'; system: SystemId; mode: Mode; endpoints: Endpoints; deadlineMs: number }
  | { kind: 'cleanup'; system: SystemId; mode: Mode; endpoints: Endpoints; deadlineMs: number; queues: string[] };

export type CellStatus = 'ok' | 'error' | 'timeout' | 'skipped';

export interface CellResult {
  status: CellStatus;
  error?: string;
  metrics: Record<string, number | null>;
  brokerCpuPct: number | null;
  /** CPU of the client process over the whole cell, percent of one core. */
  clientCpuPct: number | null;
  /**
   * Share of the host's CPU time the hypervisor gave to other machines during the cell
   * (/proc/stat's steal), in percent; null where it cannot be read.
   */
  hostStealPct: number | null;
  notes: string[];
  elapsedMs: number;
  version?: string;
}

export type ToCell =
  | { type: 'run'; job: CellJob }
  | { type: 'broker-restarted'; url: string; pid: number; readyMs: number }
  | { type: 'broker-restart-failed'; error: string };

export type FromCell = { type: 'result'; result: CellResult } | { type: 'restart-broker' };
