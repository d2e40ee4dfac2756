/**
 * Group fsync of SQLite's write-ahead log, after the deliveries.
 *
 * Every transaction commits with `synchronous=NORMAL`: SQLite appends its frames to the `-wal`
 * file and returns without an fsync (it still syncs at checkpoints, before copying frames into
 * the database and before the log restarts). A commit that must survive power loss is on disk
 * once the `-wal` file has been fdatasync'd after it: the log is written in order, so one sync
 * covers every commit made before it. That is what `synchronous=FULL` does inside each commit;
 * here it happens one turn of the event loop later, through a descriptor of our own (on Linux a
 * sync flushes the file, whichever descriptor names it), so the deliveries a commit made ready
 * leave for their consumers before the broker waits for the disk, and the commits of the frames
 * read meanwhile share the sync.
 *
 * The sync runs on the broker's thread, not libuv's thread pool: handing it to the pool and
 * waiting for its completion cost a publisher that waits for each confirm 14–21% of its rate
 * here (two more wake-ups per sync on a 2-vCPU host), and gained nothing in throughput.
 */
import { closeSync, fdatasyncSync, fsyncSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

/** Flushes a file's data to disk and calls back, like `fs.fdatasync`. */
export type SyncFile = (fd: number, done: (error: Error | null) => void) => void;

/** The default: `fdatasync` on this thread, calling back at once. */
const fdatasyncHere: SyncFile = (fd, done) => {
  try {
    fdatasyncSync(fd);
  } catch (error) {
    done(error as Error);
    return;
  }
  done(null);
};

/**
 * Makes a new file's name durable: SQLite creates the log at the first commit after the database
 * opens (and deletes it at close), and a synced file whose directory entry was lost in a power cut
 * is lost with it. SQLite syncs the directory at a new journal's first sync; this is ours.
 */
function syncDirectory(dir: string): void {
  // Windows cannot open a directory to sync it, and NTFS journals its names itself.
  if (process.platform === 'win32') return;
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

interface Waiter {
  /** The generation of the last commit before the call: done once a sync covers it. */
  upTo: number;
  done: (error: Error | null) => void;
}

export class WalSync {
  readonly #path: string;
  readonly #syncFile: SyncFile;
  /** Opened at the first sync, when the log exists (SQLite creates it at the first commit). */
  #fd: number | null = null;
  /** Commits noted so far that must reach the disk. */
  #written = 0;
  /** The generation the last completed sync covered. */
  #synced = 0;
  #inFlight = false;
  /** In `upTo` order, since generations only grow. */
  #waiters: Waiter[] = [];
  /**
   * Set by the first failed sync, and for good: after a failed fsync Linux may drop the dirty
   * pages and report the next fsync clean, so nothing written since can be promised durable.
   */
  #failed: Error | null = null;
  #closed = false;

  constructor(walPath: string, syncFile: SyncFile = fdatasyncHere) {
    this.#path = walPath;
    this.#syncFile = syncFile;
  }

  /** The error that stopped syncs, if one did. */
  get failed(): Error | null {
    return this.#failed;
  }

  /** Notes a commit that must reach the disk before anyone is told it is durable. */
  committed(): void {
    this.#written++;
  }

  /**
   * Calls `done` once every commit noted so far is on disk, or with the error that stopped it.
   * Calls it before returning when nothing is waiting for the disk.
   */
  whenDurable(done: (error: Error | null) => void): void {
    if (this.#failed !== null) return done(this.#failed);
    if (this.#synced >= this.#written || this.#closed) return done(null);
    this.#waiters.push({ upTo: this.#written, done });
    if (!this.#inFlight) this.#start();
  }

  /**
   * After the database has closed (SQLite's last checkpoint synced the log and the database):
   * tells every waiter it is durable, and closes the descriptor once no sync uses it.
   */
  closed(): void {
    this.#closed = true;
    this.#synced = this.#written;
    this.#settle();
    if (!this.#inFlight) this.#closeFd();
  }

  /**
   * Syncs in the next turn's check phase: after this turn's writes to sockets, and after the
   * frames that arrive meanwhile are read (their publishes commit in a later sync).
   */
  #start(): void {
    this.#inFlight = true;
    setImmediate(() => {
      // What has committed by now is what this sync covers.
      const upTo = this.#written;
      if (this.#closed) return this.#finish(upTo, null);
      let fd = this.#fd;
      try {
        if (fd === null) {
          fd = this.#fd = openSync(this.#path, 'r+');
          syncDirectory(dirname(this.#path));
        }
      } catch (error) {
        return this.#finish(upTo, error as Error);
      }
      this.#syncFile(fd, (error) => this.#finish(upTo, error));
    });
  }

  #finish(upTo: number, error: Error | null): void {
    this.#inFlight = false;
    if (this.#closed) {
      this.#closeFd();
      return;
    }
    if (error !== null) {
      this.#failed = new Error(`could not sync ${this.#path} to disk: ${error.message}`, { cause: error });
      this.#synced = this.#written;
      this.#settle();
      return;
    }
    // Syncs run one at a time and cover what had committed when they started: upTo only grows.
    this.#synced = upTo;
    this.#settle();
    if (this.#waiters.length > 0 && !this.#inFlight) this.#start();
  }

  /** Tells the waiters a sync has covered (all of them once failed or closed). */
  #settle(): void {
    let n = 0;
    while (n < this.#waiters.length && this.#waiters[n]!.upTo <= this.#synced) n++;
    if (n === 0) return;
    const due = this.#waiters.splice(0, n);
    for (const w of due) w.done(this.#failed);
  }

  #closeFd(): void {
    if (this.#fd === null) return;
    closeSync(this.#fd);
    this.#fd = null;
  }
}
