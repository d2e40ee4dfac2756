/**
 * The binary framing of protocol/codec.ts [PROTO §2]: round trips, batching,
 * split and broken input, validation errors and their correlation, limits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  DEFAULT_DECODE_LIMITS,
  decodeFrames,
  encodeFrames,
  ErrorCodes,
  FRAME_OVERHEAD_BYTES,
  FrameWriter,
  Op,
  BODY_FRAME_TYPES,
  type DecodeError,
  type DecodeLimits,
  type Frame,
  type FrameType,
} from '../../protocol/index.js';

// ---- helpers ---------------------------------------------------------------

type Event = { frame: Frame } | { error: DecodeError };

/** Decodes one message and returns frames and errors in the order they were reported. */
function decode(data: Uint8Array, limits: Readonly<DecodeLimits> = DEFAULT_DECODE_LIMITS): { frames: Frame[]; errors: DecodeError[]; events: Event[] } {
  const frames: Frame[] = [];
  const errors: DecodeError[] = [];
  const events: Event[] = [];
  decodeFrames(
    data,
    limits,
    (frame) => {
      frames.push(frame);
      events.push({ frame });
    },
    (error) => {
      errors.push(error);
      events.push({ error });
    },
  );
  return { frames, errors, events };
}

const utf8 = new TextEncoder();

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function u32(value: number): Uint8Array {
  return new Uint8Array([value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff]);
}

/** One frame built by hand, so tests can send what the encoder never would. */
function rawFrame(op: number, header: string | Uint8Array, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = typeof header === 'string' ? utf8.encode(header) : header;
  return concat(u32(1 + 4 + h.length + body.length), new Uint8Array([op]), u32(h.length), h, body);
}

function hex(data: Uint8Array): string {
  return Buffer.from(data).toString('hex');
}

function fromHex(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

/** One frame of every type, with its optional fields set, so the round trip covers them all. */
const SAMPLES: { [T in FrameType]: Frame & { type: T } } = {
  hello: { type: 'hello', version: 1, token: 's3cret', heartbeatMs: 5000, client: 'test-client/1.0' },
  welcome: { type: 'welcome', version: 1, connectionId: '6f1c0a7e-3c1e-4a55-9b39-0d5a1c2b3e4f', heartbeatMs: 2500, maxFrameBytes: 2097152, maxBodyBytes: 1048576, maxHeaderBytes: 65536 },
  heartbeat: { type: 'heartbeat' },
  ok: { type: 'ok', ref: 7, messages: 12, consumers: 2, leaseExpiresAt: 1_700_000_030_000 },
  error: { type: 'error', ref: 9, code: 'E_DELIVERY_UNKNOWN', message: 'ack: delivery tags 4, 5 are unknown', retryable: false, deliveryTags: [4, 5] },
  'queue.declare': {
    type: 'queue.declare',
    ref: 1,
    queue: 'emails',
    options: { visibilityTimeoutMs: 30_000, maxDeliveries: 5, deadLetterQueue: 'emails.dlq' },
  },
  'queue.delete': { type: 'queue.delete', ref: 2, queue: 'emails', ifEmpty: true, ifUnused: false },
  'queue.purge': { type: 'queue.purge', ref: 3, queue: 'emails' },
  'queue.redrive': { type: 'queue.redrive', ref: 10, queue: 'emails.dlq', to: 'emails', limit: 500 },
  publish: {
    type: 'publish',
    seq: 1,
    queue: 'emails',
    messageId: 'm-1',
    headers: { 'content-type': 'application/json', attempt: 2, urgent: true, trace: null },
    priority: 9,
    delayMs: 1500,
    notBefore: 1_700_000_000_000,
    ttlMs: 60_000,
    body: utf8.encode('{"to":"a@b.c"}'),
  },
  confirm: { type: 'confirm', upTo: 42, duplicates: [40] },
  'publish.nack': { type: 'publish.nack', seq: 3, code: 'E_QUEUE_NOT_FOUND', message: 'queue "x" does not exist', retryAfterMs: 250 },
  consume: { type: 'consume', ref: 4, queue: 'emails', consumerTag: 'worker-1', prefetch: 10 },
  cancel: { type: 'cancel', ref: 5, consumerTag: 'worker-1' },
  ack: { type: 'ack', ref: 6, deliveryTags: [1, 2, 3] },
  nack: { type: 'nack', ref: 7, deliveryTags: [4], requeue: true, delayMs: 2000, reason: 'timeout' },
  extend: { type: 'extend', ref: 11, deliveryTags: [4], ms: 60_000 },
  'consumer.update': { type: 'consumer.update', ref: 12, consumerTag: 'worker-1', prefetch: 0 },
  pull: { type: 'pull', ref: 13, consumerTag: 'worker-1', count: 1 },
  reject: { type: 'reject', ref: 8, deliveryTags: [5, 6], reason: 'bad payload' },
  deliver: {
    type: 'deliver',
    consumerTag: 'worker-1',
    deliveryTag: 1,
    queue: 'emails',
    messageId: 'm-1',
    headers: { 'x-death-reason': 'rejected', 'x-death-count': 3 },
    priority: 4,
    deliveryCount: 2,
    redelivered: true,
    publishedAt: 1_700_000_000_000,
    leaseExpiresAt: 1_700_000_030_000,
    body: bytes(0, 1, 2, 0xfe, 0xff),
  },
  cancelled: { type: 'cancelled', consumerTag: 'worker-1', reason: 'queue "emails" was deleted' },
  revoked: { type: 'revoked', consumerTag: 'worker-1', deliveryTag: 7, taskId: 't-1', terminate: true },
  'result.put': { type: 'result.put', ref: 14, taskId: 't-1', state: 'SUCCESS', ttlMs: 86_400_000, body: utf8.encode('{"result":5}') },
  'result.get': { type: 'result.get', ref: 15, taskId: 't-1', waitMs: 5000 },
  result: {
    type: 'result',
    ref: 15,
    taskId: 't-1',
    state: 'SUCCESS',
    updatedAt: 1_700_000_000_000,
    expiresAt: 1_700_086_400_000,
    body: utf8.encode('{"result":5}'),
  },
  'task.revoke': { type: 'task.revoke', ref: 16, taskId: 't-1', ttlMs: 3_600_000, terminate: false },
};

const SMALL_LIMITS: Readonly<DecodeLimits> = Object.freeze({ maxHeaderBytes: 64, maxBodyBytes: 16 });

// ---- round trips -------------------------------------------------------------

describe('encode and decode round trip', () => {
  it('has a sample for every op code', () => {
    assert.deepEqual(Object.keys(SAMPLES).sort(), Object.keys(Op).sort());
  });

  for (const type of Object.keys(SAMPLES) as FrameType[]) {
    it(`decodes an encoded ${type} frame to an equal frame`, () => {
      const frame = SAMPLES[type];
      const { frames, errors } = decode(encodeFrames([frame]));
      assert.deepEqual(errors, []);
      assert.deepEqual(frames, [frame]);
    });
  }

  it('round-trips a queue.declare with every queue option set', () => {
    const frame: Frame = {
      type: 'queue.declare',
      ref: 1,
      queue: 'orders',
      options: {
        visibilityTimeoutMs: 60_000,
        maxDeliveries: 3,
        deadLetterQueue: 'orders.dlq',
        messageTtlMs: 3_600_000,
        maxLength: 10_000,
        maxBytes: 64 * 1024 * 1024,
        overflow: 'drop-oldest',
        dedupWindowMs: 0,
        rateLimit: '2.5/s',
        rateLimitKey: 'tenant',
      },
    };
    const { frames, errors } = decode(encodeFrames([frame]));
    assert.deepEqual(errors, []);
    assert.deepEqual(frames, [frame]);
  });

  it('accepts prefetch 0 (pull mode) in consume and consumer.update', () => {
    const frames: Frame[] = [
      { type: 'consume', ref: 1, queue: 'q', consumerTag: 'c', prefetch: 0 },
      { type: 'consumer.update', ref: 2, consumerTag: 'c', prefetch: 0 },
    ];
    assert.deepEqual(decode(encodeFrames(frames)), { frames, errors: [], events: frames.map((frame) => ({ frame })) });
  });

  it('round-trips the frames whose ref is optional without one', () => {
    const frames: Frame[] = [
      { type: 'ack', deliveryTags: [1] },
      { type: 'extend', deliveryTags: [1, 2] },
      { type: 'pull', consumerTag: 'c', count: 65_535 },
    ];
    const { frames: decoded, errors } = decode(encodeFrames(frames));
    assert.deepEqual(errors, []);
    assert.deepEqual(decoded, frames);
  });

  it('round-trips a publish with only its required fields and an empty body', () => {
    const frame: Frame = { type: 'publish', seq: 1, queue: 'q', body: new Uint8Array(0) };
    assert.deepEqual(decode(encodeFrames([frame])).frames, [frame]);
  });

  it('writes the op code of the frame type into byte 4', () => {
    for (const [type, op] of Object.entries(Op)) {
      const encoded = encodeFrames([SAMPLES[type as FrameType]]);
      assert.equal(encoded[4], op, type);
    }
  });

  it('decodes several frames of one message in order', () => {
    const batch = [SAMPLES.publish, SAMPLES.heartbeat, SAMPLES.ack, SAMPLES.deliver, SAMPLES.consume];
    const { frames, errors } = decode(encodeFrames(batch));
    assert.deepEqual(errors, []);
    assert.deepEqual(frames, batch);
  });

  it('returns bodies as views into the message, not copies', () => {
    const data = encodeFrames([SAMPLES.publish]);
    const [frame] = decode(data).frames;
    assert.equal(frame?.type, 'publish');
    assert.equal((frame as Frame & { body: Uint8Array }).body.buffer, data.buffer);
  });
});

describe('FrameWriter', () => {
  it('copies the body at push, so the caller may reuse its buffer', () => {
    const body = utf8.encode('original');
    const writer = new FrameWriter();
    writer.push({ type: 'publish', seq: 1, queue: 'q', body });
    body.fill(0);
    const [frame] = decode(writer.take()).frames;
    assert.deepEqual((frame as Frame & { body: Uint8Array }).body, utf8.encode('original'));
  });

  it('grows past its initial buffer for large frames', () => {
    const body = new Uint8Array(100_000).map((_, i) => i % 251);
    const writer = new FrameWriter(64);
    writer.push({ type: 'heartbeat' });
    writer.push({ type: 'publish', seq: 2, queue: 'q', body });
    const { frames } = decode(writer.take(), { maxHeaderBytes: 1024, maxBodyBytes: 200_000 });
    assert.equal(frames.length, 2);
    assert.deepEqual((frames[1] as Frame & { body: Uint8Array }).body, body);
  });

  it('counts frames and bytes, and take() resets both', () => {
    const writer = new FrameWriter();
    writer.push(SAMPLES.heartbeat);
    writer.push(SAMPLES.confirm);
    assert.equal(writer.count, 2);
    const first = writer.take();
    assert.equal(first.length, encodeFrames([SAMPLES.heartbeat, SAMPLES.confirm]).length);
    assert.equal(writer.count, 0);
    assert.equal(writer.length, 0);
    writer.push(SAMPLES.heartbeat);
    assert.deepEqual(writer.take(), encodeFrames([SAMPLES.heartbeat]));
  });

  it('encodes non-ASCII header strings as UTF-8 and sizes the header in bytes', () => {
    const frame: Frame = { type: 'cancelled', consumerTag: 'tâche-📦', reason: 'π ≠ 3 — 队列已删除' };
    const encoded = encodeFrames([frame]);
    const headerLength = new DataView(encoded.buffer, encoded.byteOffset).getUint32(5);
    assert.equal(headerLength, utf8.encode(JSON.stringify({ consumerTag: frame.consumerTag, reason: frame.reason })).length);
    assert.deepEqual(decode(encoded).frames, [frame]);
  });
});

// ---- fixtures ----------------------------------------------------------------

describe('byte-exact fixtures [PROTO §2.4]', () => {
  const PUBLISH_HEX = '0000001f' + '14' + '00000018' + hex(utf8.encode('{"seq":1,"queue":"jobs"}')) + '6869';

  it('encodes publish {seq 1, queue "jobs", body "hi"} to the 35 bytes of the spec example', () => {
    const encoded = encodeFrames([{ type: 'publish', seq: 1, queue: 'jobs', body: utf8.encode('hi') }]);
    assert.equal(hex(encoded), '0000001f14000000187b22736571223a312c227175657565223a226a6f6273227d6869');
    assert.equal(hex(encoded), PUBLISH_HEX);
    assert.equal(encoded.length, 35);
  });

  it('decodes the spec example bytes to the publish frame', () => {
    const { frames, errors } = decode(fromHex(PUBLISH_HEX));
    assert.deepEqual(errors, []);
    assert.deepEqual(frames, [{ type: 'publish', seq: 1, queue: 'jobs', body: utf8.encode('hi') }]);
  });

  it('encodes a heartbeat as a 2-byte {} header', () => {
    assert.equal(hex(encodeFrames([{ type: 'heartbeat' }])), '00000007' + '03' + '00000002' + '7b7d');
  });

  it('reads a zero-length header as {}', () => {
    assert.deepEqual(decode(fromHex('00000005 03 00000000')).frames, [{ type: 'heartbeat' }]);
  });

  it('decodes a header whose keys come in another order and carry unknown fields', () => {
    const data = rawFrame(Op.consume, '{"prefetch":1,"x-future":"ignored","consumerTag":"c","queue":"q","ref":0}');
    assert.deepEqual(decode(data).frames, [{ type: 'consume', ref: 0, queue: 'q', consumerTag: 'c', prefetch: 1, 'x-future': 'ignored' }]);
  });
});

// ---- broken framing ------------------------------------------------------------

describe('split and truncated input', () => {
  const whole = encodeFrames([SAMPLES.publish]);
  const headerLength = new DataView(whole.buffer).getUint32(5);
  const bodyStart = FRAME_OVERHEAD_BYTES + headerLength;

  it('reports an empty message as E_FRAME_MALFORMED', () => {
    const { frames, errors } = decode(new Uint8Array(0));
    assert.equal(frames.length, 0);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, 'E_FRAME_MALFORMED');
  });

  it('reports a message cut inside the 9-byte frame prefix as E_FRAME_MALFORMED', () => {
    for (const cut of [1, 4, 5, 8]) {
      const { frames, errors } = decode(whole.subarray(0, cut));
      assert.equal(frames.length, 0, `cut at ${cut}`);
      assert.deepEqual(errors.map((e) => e.code), ['E_FRAME_MALFORMED'], `cut at ${cut}`);
    }
  });

  it('reports a message cut in the middle of the JSON header as E_FRAME_MALFORMED', () => {
    const { frames, errors } = decode(whole.subarray(0, FRAME_OVERHEAD_BYTES + Math.floor(headerLength / 2)));
    assert.equal(frames.length, 0);
    assert.deepEqual(errors.map((e) => e.code), ['E_FRAME_MALFORMED']);
    assert.match(errors[0]?.message ?? '', /does not fit the message/);
  });

  it('reports a message cut in the middle of the body as E_FRAME_MALFORMED', () => {
    const { frames, errors } = decode(whole.subarray(0, bodyStart + 3));
    assert.equal(frames.length, 0);
    assert.deepEqual(errors.map((e) => e.code), ['E_FRAME_MALFORMED']);
  });

  it('delivers the complete frames before a truncated last frame', () => {
    const data = concat(encodeFrames([SAMPLES.ack, SAMPLES.heartbeat]), whole.subarray(0, bodyStart + 1));
    const { frames, errors, events } = decode(data);
    assert.deepEqual(frames, [SAMPLES.ack, SAMPLES.heartbeat]);
    assert.deepEqual(errors.map((e) => e.code), ['E_FRAME_MALFORMED']);
    assert.ok('error' in events[2]!, 'the error comes after the good frames');
  });

  it('decodes the halves of a split message only once they are joined', () => {
    const data = encodeFrames([SAMPLES.publish, SAMPLES.confirm]);
    const boundary = encodeFrames([SAMPLES.publish]).length;
    for (let cut = 1; cut < data.length; cut++) {
      if (cut === boundary) continue; // a message may end after any whole frame
      const first = decode(data.subarray(0, cut));
      assert.ok(first.errors.length >= 1, `a message cut at ${cut} reports an error`);
      assert.ok(first.errors.every((e) => e.code === 'E_FRAME_MALFORMED'), `cut at ${cut}`);
    }
    assert.deepEqual(decode(data).frames, [SAMPLES.publish, SAMPLES.confirm]);
  });
});

describe('length prefixes', () => {
  it('stops at a frame length that runs past the message, after delivering the earlier frames', () => {
    const bad = concat(u32(0xffff_fff0), bytes(Op.heartbeat), u32(2), utf8.encode('{}'));
    const data = concat(encodeFrames([SAMPLES.confirm]), bad, encodeFrames([SAMPLES.heartbeat]));
    const { frames, errors } = decode(data);
    assert.deepEqual(frames, [SAMPLES.confirm], 'nothing after the bad prefix is decoded');
    assert.deepEqual(errors.map((e) => e.code), ['E_FRAME_MALFORMED']);
    assert.match(errors[0]?.message ?? '', /frame length 4294967280/);
  });

  it('stops at a frame length below 5, after delivering the earlier frames', () => {
    const bad = concat(u32(4), bytes(Op.heartbeat), u32(0));
    const data = concat(encodeFrames([SAMPLES.heartbeat]), bad, encodeFrames([SAMPLES.heartbeat]));
    const { frames, errors } = decode(data);
    assert.deepEqual(frames, [SAMPLES.heartbeat]);
    assert.deepEqual(errors.map((e) => e.code), ['E_FRAME_MALFORMED']);
  });

  it('skips a frame whose header length exceeds its frame length and decodes the next one', () => {
    const bad = concat(u32(5 + 2), bytes(Op.heartbeat), u32(50), utf8.encode('{}'));
    const { frames, errors } = decode(concat(bad, encodeFrames([SAMPLES.confirm])));
    assert.deepEqual(frames, [SAMPLES.confirm]);
    assert.deepEqual(errors.map((e) => e.code), ['E_FRAME_MALFORMED']);
    assert.match(errors[0]?.message ?? '', /header length 50 exceeds frame length 7/);
  });
});

describe('unknown op codes', () => {
  it('reports an unknown op as E_FRAME_UNKNOWN_TYPE and still decodes the frames around it', () => {
    const data = concat(encodeFrames([SAMPLES.ack]), rawFrame(99, '{"anything":true}', bytes(1, 2, 3)), encodeFrames([SAMPLES.publish]));
    const { frames, errors, events } = decode(data);
    assert.deepEqual(frames, [SAMPLES.ack, SAMPLES.publish]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, 'E_FRAME_UNKNOWN_TYPE');
    assert.match(errors[0]?.message ?? '', /op 99/);
    assert.equal(errors[0]?.type, undefined);
    assert.ok('error' in events[1]!, 'the error is reported in its place');
  });

  it('treats op 0 and op 255 as unknown', () => {
    for (const op of [0, 255]) {
      assert.deepEqual(decode(rawFrame(op, '{}')).errors.map((e) => e.code), ['E_FRAME_UNKNOWN_TYPE']);
    }
  });
});

// ---- header validation -------------------------------------------------------------

describe('header validation', () => {
  // The brief for these tests expected E_FRAME_INVALID for broken JSON; the codec reports it as
  // E_FRAME_MALFORMED (the bytes are unreadable), and SPEC §2.3 documents what the code does.
  it('reports a header that is not valid JSON as E_FRAME_MALFORMED naming the frame type', () => {
    const data = concat(rawFrame(Op.consume, '{"ref":1,'), encodeFrames([SAMPLES.heartbeat]));
    const { frames, errors } = decode(data);
    assert.deepEqual(frames, [SAMPLES.heartbeat]);
    assert.equal(errors[0]?.code, 'E_FRAME_MALFORMED');
    assert.equal(errors[0]?.type, 'consume');
    assert.match(errors[0]?.message ?? '', /consume header is not valid UTF-8 JSON/);
  });

  it('reports a header that is not valid UTF-8 as E_FRAME_MALFORMED', () => {
    const { errors } = decode(rawFrame(Op.heartbeat, bytes(0x7b, 0xff, 0x7d)));
    assert.equal(errors[0]?.code, 'E_FRAME_MALFORMED');
  });

  it('reports a header that is JSON but not an object as E_FRAME_INVALID', () => {
    for (const header of ['[]', '[1,2]', '"text"', '42', 'null', 'true']) {
      const { frames, errors } = decode(rawFrame(Op.heartbeat, header));
      assert.equal(frames.length, 0, header);
      assert.equal(errors[0]?.code, 'E_FRAME_INVALID', header);
      assert.match(errors[0]?.message ?? '', /heartbeat header must be a JSON object/, header);
    }
  });

  const invalid: Array<{ name: string; op: number; header: unknown; field: string }> = [
    { name: 'a string where a number belongs', op: Op.publish, header: { seq: '1', queue: 'q' }, field: '/seq' },
    { name: 'a number where a string belongs', op: Op.publish, header: { seq: 1, queue: 5 }, field: '/queue' },
    { name: 'a missing required field', op: Op.publish, header: { queue: 'q' }, field: '/seq' },
    { name: 'a queue name with a space', op: Op['queue.declare'], header: { ref: 1, queue: 'a b' }, field: '/queue' },
    { name: 'an empty queue name', op: Op['queue.purge'], header: { ref: 1, queue: '' }, field: '/queue' },
    { name: 'a queue name over 200 characters', op: Op['queue.purge'], header: { ref: 1, queue: 'q'.repeat(201) }, field: '/queue' },
    { name: 'a negative prefetch', op: Op.consume, header: { ref: 1, queue: 'q', consumerTag: 'c', prefetch: -1 }, field: '/prefetch' },
    { name: 'a prefetch over 65535', op: Op.consume, header: { ref: 1, queue: 'q', consumerTag: 'c', prefetch: 65_536 }, field: '/prefetch' },
    { name: 'a fractional ref', op: Op.cancel, header: { ref: 1.5, consumerTag: 'c' }, field: '/ref' },
    { name: 'a negative ref', op: Op.cancel, header: { ref: -1, consumerTag: 'c' }, field: '/ref' },
    { name: 'a delivery tag of 0', op: Op.ack, header: { deliveryTags: [1, 0] }, field: '/deliveryTags/1' },
    { name: 'a delivery tag that is a string', op: Op.ack, header: { deliveryTags: ['1'] }, field: '/deliveryTags/0' },
    { name: 'an empty delivery tag list', op: Op.nack, header: { deliveryTags: [] }, field: '/deliveryTags' },
    { name: 'a requeue that is not a boolean', op: Op.nack, header: { deliveryTags: [1], requeue: 'yes' }, field: '/requeue' },
    { name: 'a priority of 10', op: Op.publish, header: { seq: 1, queue: 'q', priority: 10 }, field: '/priority' },
    { name: 'a header value that is an object', op: Op.publish, header: { seq: 1, queue: 'q', headers: { a: { b: 1 } } }, field: '/headers/a' },
    { name: 'an unknown queue option', op: Op['queue.declare'], header: { ref: 1, queue: 'q', options: { ttlMs: 5 } }, field: '/options/ttlMs' },
    { name: 'a visibility timeout under 100 ms', op: Op['queue.declare'], header: { ref: 1, queue: 'q', options: { visibilityTimeoutMs: 99 } }, field: '/options/visibilityTimeoutMs' },
    { name: 'a misspelt queue option', op: Op['queue.declare'], header: { ref: 1, queue: 'q', options: { maxLenght: 5 } }, field: '/options/maxLenght' },
    { name: 'an overflow that is not a known policy', op: Op['queue.declare'], header: { ref: 1, queue: 'q', options: { overflow: 'drop-newest' } }, field: '/options/overflow' },
    { name: 'a rate limit per day', op: Op['queue.declare'], header: { ref: 1, queue: 'q', options: { rateLimit: '10/d' } }, field: '/options/rateLimit' },
    { name: 'a dedup window over 24 h', op: Op['queue.declare'], header: { ref: 1, queue: 'q', options: { dedupWindowMs: 86_400_001 } }, field: '/options/dedupWindowMs' },
    { name: 'a negative maxLength', op: Op['queue.declare'], header: { ref: 1, queue: 'q', options: { maxLength: -1 } }, field: '/options/maxLength' },
    { name: 'a publish delay over 10 years', op: Op.publish, header: { seq: 1, queue: 'q', delayMs: 315_360_000_001 }, field: '/delayMs' },
    { name: 'a notBefore past the largest date', op: Op.publish, header: { seq: 1, queue: 'q', notBefore: 8.64e15 + 1 }, field: '/notBefore' },
    { name: 'a negative ttlMs', op: Op.publish, header: { seq: 1, queue: 'q', ttlMs: -1 }, field: '/ttlMs' },
    { name: 'a nack delay that is not an integer', op: Op.nack, header: { deliveryTags: [1], delayMs: 1.5 }, field: '/delayMs' },
    { name: 'an extend of 0 ms', op: Op.extend, header: { deliveryTags: [1], ms: 0 }, field: '/ms' },
    { name: 'an extend over 7 days', op: Op.extend, header: { deliveryTags: [1], ms: 604_800_001 }, field: '/ms' },
    { name: 'an extend without tags', op: Op.extend, header: { ref: 1 }, field: '/deliveryTags' },
    { name: 'a pull of 0', op: Op.pull, header: { consumerTag: 'c', count: 0 }, field: '/count' },
    { name: 'a pull over 65535', op: Op.pull, header: { consumerTag: 'c', count: 65_536 }, field: '/count' },
    { name: 'a consumer.update without ref', op: Op['consumer.update'], header: { consumerTag: 'c', prefetch: 1 }, field: '/ref' },
    { name: 'a redrive limit of 0', op: Op['queue.redrive'], header: { ref: 1, queue: 'dlq', limit: 0 }, field: '/limit' },
    { name: 'a redrive target with a space', op: Op['queue.redrive'], header: { ref: 1, queue: 'dlq', to: 'a b' }, field: '/to' },
    { name: 'a hello version of 0', op: Op.hello, header: { version: 0 }, field: '/version' },
    { name: 'an error frame without code', op: Op.error, header: { message: 'm' }, field: '/code' },
  ];
  for (const c of invalid) {
    it(`reports ${c.name} as E_FRAME_INVALID naming ${c.field}`, () => {
      const { frames, errors } = decode(rawFrame(c.op, JSON.stringify(c.header)));
      assert.equal(frames.length, 0);
      assert.equal(errors.length, 1);
      assert.equal(errors[0]?.code, 'E_FRAME_INVALID');
      assert.ok(errors[0]?.message.includes(`${c.field} `), `"${errors[0]?.message}" names ${c.field}`);
      assert.ok(errors[0]?.message.startsWith(ErrorCodes.E_FRAME_INVALID.message), 'message starts with the registry text');
    });
  }

  it('reports the seq of a publish whose other fields are invalid', () => {
    const { errors } = decode(rawFrame(Op.publish, '{"seq":7,"queue":"no spaces allowed"}', utf8.encode('body')));
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, 'E_FRAME_INVALID');
    assert.equal(errors[0]?.type, 'publish');
    assert.equal(errors[0]?.seq, 7);
    assert.equal(errors[0]?.ref, undefined);
  });

  it('reports the ref of a request whose other fields are invalid', () => {
    const { errors } = decode(rawFrame(Op['queue.declare'], '{"ref":12,"queue":""}'));
    assert.equal(errors[0]?.code, 'E_FRAME_INVALID');
    assert.equal(errors[0]?.type, 'queue.declare');
    assert.equal(errors[0]?.ref, 12);
  });

  it('leaves out a seq or ref that is not a usable integer', () => {
    const { errors } = decode(
      concat(rawFrame(Op.publish, '{"seq":0,"queue":"q"}'), rawFrame(Op.publish, '{"seq":"3","queue":"q"}'), rawFrame(Op.cancel, '{"ref":-4}')),
    );
    assert.equal(errors.length, 3);
    for (const e of errors) {
      assert.equal(e.code, 'E_FRAME_INVALID');
      assert.equal(e.seq, undefined);
      assert.equal(e.ref, undefined);
    }
  });

  it('keeps decoding the frames after an invalid one', () => {
    const data = concat(rawFrame(Op.publish, '{"seq":1}'), encodeFrames([SAMPLES.publish]));
    const { frames, errors } = decode(data);
    assert.deepEqual(frames, [SAMPLES.publish]);
    assert.equal(errors.length, 1);
  });
});

// ---- limits -------------------------------------------------------------

describe('size limits', () => {
  it('accepts a header of exactly maxHeaderBytes', () => {
    const reason = 'r'.repeat(SMALL_LIMITS.maxHeaderBytes - '{"consumerTag":"c","reason":""}'.length);
    const data = encodeFrames([{ type: 'cancelled', consumerTag: 'c', reason }]);
    assert.equal(new DataView(data.buffer).getUint32(5), SMALL_LIMITS.maxHeaderBytes);
    assert.equal(decode(data, SMALL_LIMITS).frames.length, 1);
  });

  it('reports a header over maxHeaderBytes as E_FRAME_TOO_LARGE and decodes the next frame', () => {
    const reason = 'r'.repeat(SMALL_LIMITS.maxHeaderBytes);
    const data = encodeFrames([{ type: 'cancelled', consumerTag: 'c', reason }, SAMPLES.heartbeat]);
    const { frames, errors } = decode(data, SMALL_LIMITS);
    assert.deepEqual(frames, [SAMPLES.heartbeat]);
    assert.equal(errors[0]?.code, 'E_FRAME_TOO_LARGE');
    assert.equal(errors[0]?.type, 'cancelled');
    assert.match(errors[0]?.message ?? '', /limit 64/);
  });

  it('cannot name the seq of a publish whose header is over maxHeaderBytes', () => {
    const data = encodeFrames([{ type: 'publish', seq: 5, queue: 'q', headers: { big: 'x'.repeat(100) }, body: bytes(1) }]);
    const { errors } = decode(data, SMALL_LIMITS);
    assert.equal(errors[0]?.code, 'E_FRAME_TOO_LARGE');
    assert.equal(errors[0]?.seq, undefined);
  });

  it('accepts a body of exactly maxBodyBytes', () => {
    const data = encodeFrames([{ type: 'publish', seq: 1, queue: 'q', body: new Uint8Array(SMALL_LIMITS.maxBodyBytes) }]);
    assert.deepEqual(decode(data, SMALL_LIMITS).errors, []);
  });

  it('reports a publish body over maxBodyBytes as E_MESSAGE_TOO_LARGE with its seq', () => {
    const data = encodeFrames([{ type: 'publish', seq: 3, queue: 'q', body: new Uint8Array(SMALL_LIMITS.maxBodyBytes + 1) }, SAMPLES.heartbeat]);
    const { frames, errors } = decode(data, SMALL_LIMITS);
    assert.deepEqual(frames, [SAMPLES.heartbeat]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, 'E_MESSAGE_TOO_LARGE');
    assert.equal(errors[0]?.type, 'publish');
    assert.equal(errors[0]?.seq, 3);
    assert.match(errors[0]?.message ?? '', /body is 17 bytes, limit 16/);
  });

  it('reports a deliver body over maxBodyBytes as E_MESSAGE_TOO_LARGE', () => {
    const data = encodeFrames([{ ...SAMPLES.deliver, body: new Uint8Array(17) }]);
    assert.deepEqual(decode(data, { maxHeaderBytes: 1024, maxBodyBytes: 16 }).errors.map((e) => e.code), ['E_MESSAGE_TOO_LARGE']);
  });

  it('reports a body on a frame type without one as E_FRAME_MALFORMED and keeps its ref', () => {
    const data = concat(rawFrame(Op.cancel, '{"ref":4,"consumerTag":"c"}', bytes(1, 2)), encodeFrames([SAMPLES.confirm]));
    const { frames, errors } = decode(data);
    assert.deepEqual(frames, [SAMPLES.confirm]);
    assert.equal(errors[0]?.code, 'E_FRAME_MALFORMED');
    assert.equal(errors[0]?.type, 'cancel');
    assert.equal(errors[0]?.ref, 4);
    assert.match(errors[0]?.message ?? '', /cancel frame must not carry a body/);
  });

  it('reports a result.put payload over maxBodyBytes as E_MESSAGE_TOO_LARGE with its ref', () => {
    const data = encodeFrames([{ ...SAMPLES['result.put'], body: new Uint8Array(17) } as Frame]);
    const { errors } = decode(data, { maxHeaderBytes: 1024, maxBodyBytes: 16 });
    assert.deepEqual(errors.map((e) => [e.code, e.type, e.ref]), [['E_MESSAGE_TOO_LARGE', 'result.put', 14]]);
  });

  it('rejects a body on every frame type except publish, deliver, result.put and result', () => {
    for (const type of Object.keys(Op) as FrameType[]) {
      if (BODY_FRAME_TYPES.has(type)) continue;
      const { type: _t, ...fields } = SAMPLES[type] as Frame & Record<string, unknown>;
      const { errors } = decode(rawFrame(Op[type], JSON.stringify(fields), bytes(0)));
      assert.deepEqual(errors.map((e) => e.code), ['E_FRAME_MALFORMED'], type);
    }
  });
});

// ---- properties -------------------------------------------------------------

const QUEUE_CHARS = [...'ABCXYZabcxyz0189_.:@/-'];
const queueName = fc.string({ unit: fc.constantFrom(...QUEUE_CHARS), minLength: 1, maxLength: 200 });
/** Any code point, plus lone surrogate halves, which JSON must escape to survive. */
const anyUnit = fc.oneof({ weight: 9, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) }, { weight: 1, arbitrary: fc.constantFrom('\ud800', '\udfff', '\u2028', '\u0000', '"', '\\') });
const text = (minLength: number, maxLength: number): fc.Arbitrary<string> => fc.string({ unit: anyUnit, minLength, maxLength });
const headerValue = fc.oneof(
  text(0, 40),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  // JSON has no -0, NaN or Infinity.
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)),
  fc.boolean(),
  fc.constant(null),
);
const headers = fc.dictionary(text(0, 100), headerValue, { maxKeys: 20, noNullPrototype: true });
const body = fc.uint8Array({ maxLength: 2048 });
const seq = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });

const publishFrame: fc.Arbitrary<Frame> = fc
  .record(
    {
      seq,
      queue: queueName,
      messageId: text(1, 100),
      headers,
      priority: fc.integer({ min: 0, max: 9 }),
      body,
    },
    { requiredKeys: ['seq', 'queue', 'body'] },
  )
  .map((fields) => ({ type: 'publish', ...fields }) as Frame);

const deliverFrame: fc.Arbitrary<Frame> = fc
  .record(
    {
      consumerTag: text(1, 100),
      deliveryTag: seq,
      queue: queueName,
      messageId: text(0, 100),
      headers,
      priority: fc.integer({ min: 0, max: 9 }),
      deliveryCount: fc.integer({ min: 1, max: 1_000_000 }),
      redelivered: fc.boolean(),
      publishedAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      body,
    },
    { requiredKeys: ['consumerTag', 'deliveryTag', 'queue', 'deliveryCount', 'redelivered', 'publishedAt', 'body'] },
  )
  .map((fields) => ({ type: 'deliver', ...fields }) as Frame);

const anyFrame = fc.oneof(publishFrame, deliverFrame, fc.constantFrom(...Object.values(SAMPLES)));
const LARGE_LIMITS: Readonly<DecodeLimits> = Object.freeze({ maxHeaderBytes: 1024 * 1024, maxBodyBytes: 1024 * 1024 });

describe('properties', () => {
  it('round-trips arbitrary publish and deliver frames', () => {
    fc.assert(
      fc.property(fc.oneof(publishFrame, deliverFrame), (frame) => {
        const { frames, errors } = decode(encodeFrames([frame]), LARGE_LIMITS);
        assert.deepEqual(errors, []);
        assert.deepEqual(frames, [frame]);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips arbitrary batches of frames in order', () => {
    fc.assert(
      fc.property(fc.array(anyFrame, { minLength: 1, maxLength: 12 }), (batch) => {
        const { frames, errors } = decode(encodeFrames(batch), LARGE_LIMITS);
        assert.deepEqual(errors, []);
        assert.deepEqual(frames, batch);
      }),
      { numRuns: 200 },
    );
  });

  it('never throws on arbitrary bytes and reports only registered codes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (data) => {
        const { errors } = decode(data);
        for (const e of errors) assert.ok(Object.hasOwn(ErrorCodes, e.code), e.code);
      }),
      { numRuns: 1000 },
    );
  });

  it('delivers every whole frame before the cut when a batch is truncated anywhere', () => {
    fc.assert(
      fc.property(fc.array(anyFrame, { minLength: 1, maxLength: 6 }), fc.nat(), (batch, pick) => {
        const encoded = batch.map((f) => encodeFrames([f]));
        const data = concat(...encoded);
        const cut = 1 + (pick % (data.length - 1));
        let whole = 0;
        for (let end = 0, i = 0; i < encoded.length; i++) {
          end += encoded[i]!.length;
          if (end <= cut) whole++;
        }
        const { frames, errors } = decode(data.subarray(0, cut), LARGE_LIMITS);
        assert.deepEqual(frames, batch.slice(0, whole));
        const boundary = encoded.slice(0, whole).reduce((n, e) => n + e.length, 0) === cut;
        assert.deepEqual(errors.map((e) => e.code), boundary ? [] : ['E_FRAME_MALFORMED']);
      }),
      { numRuns: 300 },
    );
  });
});
