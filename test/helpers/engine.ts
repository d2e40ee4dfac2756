/** Engine test helpers: a session sink that records what it is sent, and an engine on a real SQLite file. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { Engine, type Delivery, type EngineSession, type SessionSink } from '../../server/engine/engine.js';
import { openSqliteStore, type SqliteStoreOptions, type Store } from '../../storage/index.js';
import { tempDir } from './server.js';

/**
 * A session sink that records deliveries and the highest confirm, and fails on a refused publish
 * unless given `publishFailed`, for tests that expect refusals.
 */
export function recordingSink(
  publishFailed: SessionSink['publishFailed'] = (seq, error) => assert.fail(`publish ${seq} failed: ${error.message}`),
): { sink: SessionSink; deliveries: Delivery[]; confirmedUpTo: () => number } {
  const deliveries: Delivery[] = [];
  let upTo = 0;
  const sink: SessionSink = {
    deliver: (d) => deliveries.push(d),
    confirm: (n) => {
      upTo = n;
    },
    publishFailed,
    consumerCancelled: () => {},
    revoked: () => {},
  };
  return { sink, deliveries, confirmedUpTo: () => upTo };
}

/**
 * An engine with default options on a real SQLite file (opened with `storeOptions`), and one
 * session whose sink records what it is sent (see {@link recordingSink} for `publishFailed`).
 */
export function engineOnSqlite(
  t: TestContext,
  { storeOptions = {}, publishFailed }: { storeOptions?: Omit<SqliteStoreOptions, 'path'>; publishFailed?: SessionSink['publishFailed'] } = {},
): { engine: Engine; store: Store; session: EngineSession; deliveries: Delivery[]; confirmedUpTo: () => number } {
  const store = openSqliteStore({ path: join(tempDir(t), 'berth.db'), ...storeOptions });
  const engine = new Engine({ store, logger: pino({ level: 'silent' }) });
  t.after(() => {
    engine.close();
    store.close();
  });
  const { sink, deliveries, confirmedUpTo } = recordingSink(publishFailed);
  return { engine, store, session: engine.openSession('s1', sink), deliveries, confirmedUpTo };
}
