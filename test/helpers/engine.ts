/** A session sink for engine tests that records deliveries and the highest confirm, and fails on a refused publish. */
import assert from 'node:assert/strict';
import type { Delivery, SessionSink } from '../../server/engine/engine.js';

export function recordingSink(): { sink: SessionSink; deliveries: Delivery[]; confirmedUpTo: () => number } {
  const deliveries: Delivery[] = [];
  let upTo = 0;
  const sink: SessionSink = {
    deliver: (d) => deliveries.push(d),
    confirm: (n) => {
      upTo = n;
    },
    publishFailed: (seq, error) => assert.fail(`publish ${seq} failed: ${error.message}`),
    consumerCancelled: () => {},
    revoked: () => {},
  };
  return { sink, deliveries, confirmedUpTo: () => upTo };
}
