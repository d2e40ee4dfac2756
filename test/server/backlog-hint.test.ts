/**
 * The backlog hint against a real broker [PROTO §5.5]: `welcome.features` answers `backlog-hint`,
 * and `deliver.backlog` is set exactly on a delivery that used its consumer's last credit while
 * the queue held more ready, in the JSON and the compact form, for prefetch windows and pull
 * credit alike; a peer that did not offer the feature never sees the field.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BACKLOG_HINT, COMPACT_FRAMES, CompactOp, Op, type FrameOf } from '../../protocol/index.js';
import { featurePeer as peer, type RawPeer } from '../helpers/raw.js';
import { startTestServer } from '../helpers/server.js';

/** Publish seqs already used per peer: they must increase on a connection [PROTO §5.4]. */
const lastSeq = new WeakMap<RawPeer, number>();

/** Declares `queue` and publishes `count` messages (bodies m1, m2, …) to it through `raw`, all confirmed. */
async function fill(raw: RawPeer, queue: string, count: number): Promise<void> {
  raw.send({ type: 'queue.declare', ref: 1, queue });
  await raw.next('ok');
  const first = (lastSeq.get(raw) ?? 0) + 1;
  const last = first + count - 1;
  lastSeq.set(raw, last);
  for (let seq = first; seq <= last; seq++) raw.send({ type: 'publish', seq, queue, body: new TextEncoder().encode(`m${seq - first + 1}`) });
  for (let confirmed = 0; confirmed < last; ) confirmed = (await raw.next('confirm')).upTo;
}

/** Starts consumer `consumerTag` on `queue` and waits for its `ok`. */
async function consume(raw: RawPeer, queue: string, consumerTag: string, prefetch: number): Promise<void> {
  raw.send({ type: 'consume', ref: 2, queue, consumerTag, prefetch });
  await raw.next('ok');
}

/** The next `count` deliveries, in order, settling none. */
async function take(raw: RawPeer, count: number): Promise<Array<FrameOf<'deliver'>>> {
  const got: Array<FrameOf<'deliver'>> = [];
  while (got.length < count) got.push(await raw.next('deliver'));
  return got;
}

/** Consumes `queue` with `prefetch` and takes `count` deliveries, acking each before taking the next. */
async function takeAcking(raw: RawPeer, queue: string, prefetch: number, count: number): Promise<Array<FrameOf<'deliver'>>> {
  await consume(raw, queue, 'c', prefetch);
  const got: Array<FrameOf<'deliver'>> = [];
  while (got.length < count) {
    const d = await raw.next('deliver');
    got.push(d);
    raw.send({ type: 'ack', deliveryTags: [d.deliveryTag] });
  }
  return got;
}

describe('backlog-hint negotiation', () => {
  it('lists backlog-hint in welcome.features when offered, beside compact-frames or alone', async (t) => {
    const { url } = await startTestServer(t);
    assert.deepEqual((await peer(t, url, [BACKLOG_HINT])).welcome.features, [BACKLOG_HINT]);
    assert.deepEqual((await peer(t, url, [BACKLOG_HINT, COMPACT_FRAMES])).welcome.features, [COMPACT_FRAMES, BACKLOG_HINT]);
    assert.deepEqual((await peer(t, url, ['x-future', COMPACT_FRAMES])).welcome.features, [COMPACT_FRAMES]);
    assert.deepEqual((await peer(t, url, ['Backlog-Hint'])).welcome.features, []);
  });
});

describe('deliver.backlog', () => {
  for (const [form, features, op] of [['JSON', [BACKLOG_HINT], Op.deliver], ['compact', [COMPACT_FRAMES, BACKLOG_HINT], CompactOp.deliver]] as const) {
    it(`is set, in the ${form} form, on each delivery that used the last credit of a prefetch 1 while more were ready`, async (t) => {
      const { url } = await startTestServer(t);
      const { raw, ops } = await peer(t, url, [...features]);
      await fill(raw, 'q', 3);
      const got = await takeAcking(raw, 'q', 1, 3);
      assert.deepEqual(got.map((d) => [Buffer.from(d.body).toString(), d.backlog]), [['m1', true], ['m2', true], ['m3', undefined]]);
      assert.deepEqual(ops.filter((o) => o === Op.deliver || o === CompactOp.deliver), [op, op, op]);
    });
  }

  it('is not set while the consumer has credit left, and is set on the delivery that used the last of it', async (t) => {
    const { url } = await startTestServer(t);
    const { raw } = await peer(t, url, [BACKLOG_HINT]);
    await fill(raw, 'wide', 3);
    await consume(raw, 'wide', 'c', 5);
    const wide = await take(raw, 3);
    assert.deepEqual(wide.map((d) => d.backlog), [undefined, undefined, undefined], 'a window of 5 over 3 messages never runs out');

    await fill(raw, 'narrow', 3);
    await consume(raw, 'narrow', 'n', 2);
    const first = await take(raw, 2);
    assert.deepEqual(first.map((d) => d.backlog), [undefined, true], 'the second delivery fills the window of 2 with one message left');
  });

  it('is set for pull credit as for a window: the delivery that used the last credit, with more ready', async (t) => {
    const { url } = await startTestServer(t);
    const { raw } = await peer(t, url, [BACKLOG_HINT]);
    await fill(raw, 'pulled', 2);
    await consume(raw, 'pulled', 'p', 0);
    raw.send({ type: 'pull', ref: 3, consumerTag: 'p', count: 1 });
    const first = await raw.next('deliver');
    assert.equal(first.backlog, true);
    raw.send({ type: 'pull', ref: 4, consumerTag: 'p', count: 5 });
    const last = await raw.next('deliver');
    assert.equal(last.backlog, undefined, 'the last message, with credit to spare');
  });

  for (const features of [undefined, [COMPACT_FRAMES]]) {
    it(`is never sent to a peer that did not offer backlog-hint (features ${JSON.stringify(features ?? null)})`, async (t) => {
      const { url } = await startTestServer(t);
      const { raw } = await peer(t, url, features);
      await fill(raw, 'q', 3);
      const got = await takeAcking(raw, 'q', 1, 3);
      assert.deepEqual(got.map((d) => 'backlog' in d), [false, false, false]);
    });
  }
});
