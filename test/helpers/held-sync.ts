/** A log sync for a real SQLite store that the test finishes by hand (the store's `syncFile` option). */
import { fdatasync } from 'node:fs';
import type { SqliteStoreOptions } from '../../storage/index.js';

export interface HeldSyncCall {
  /** The descriptor the store asked to sync. */
  fd: number;
  /** Reports the sync done (no argument) or failed with `error`, without touching the disk. */
  finish(error?: Error): void;
  /** Runs the real fdatasync and reports its outcome. */
  real(): void;
}

/** `syncFile` to pass to the store; `calls` holds one entry per sync the store started. */
export function heldSync(): { syncFile: NonNullable<SqliteStoreOptions['syncFile']>; calls: HeldSyncCall[] } {
  const calls: HeldSyncCall[] = [];
  return {
    calls,
    syncFile: (fd, done) => {
      calls.push({ fd, finish: (error) => done(error ?? null), real: () => fdatasync(fd, (err) => done(err)) });
    },
  };
}
