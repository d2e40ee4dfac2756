/**
 * Compact headers of protocol/compact.ts [PROTO §2.5]: a compact publish (op 23) or deliver (op 43)
 * must decode to exactly the frame its JSON form (op 20 / 40) decodes to, and a bad one must be
 * refused as a bad JSON header is (E_FRAME_MALFORMED / E_FRAME_INVALID, a publish's seq for the
 * nack), never by a throw or a half-read frame. Also: the name cache (a queue name or consumer tag
 * found by its bytes), the writer's refusals (nothing written), the size limits, the spec fixture.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import {
  compactDeliverNames,
  CompactOp,
  decodeFrames,
  DEFAULT_DECODE_LIMITS,
  encodeFrames,
  FrameWriter,
  HeaderSchemas,
  MAX_MS,
  MAX_TIME,
  type CompactDeliverFields,
  type DecodeError,
  type DecodeLimits,
  type Frame,
  type FrameOf,
} from '../../protocol/index.js';

// ---- helpers ---------------------------------------------------------------

type Event = { frame: Frame } | { error: DecodeError };
type Publish = FrameOf<'publish'>;
type Deliver = FrameOf<'deliver'>;

function decode(data: Uint8Array, limits: Readonly<DecodeLimits> = DEFAULT_DECODE_LIMITS): { frames: Frame[]; errors: DecodeError[]; events: Event[] } {
  const frames: Frame[] = [];
  const errors: DecodeError[] = [];
  const events: Event[] = [];
  decodeFrames(data, limits, (frame) => (frames.push(frame), events.push({ frame })), (error) => (errors.push(error), events.push({ error })));
  return { frames, errors, events };
}

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);
const LARGE_LIMITS: Readonly<DecodeLimits> = Object.freeze({ maxHeaderBytes: 1024 * 1024, maxBodyBytes: 1024 * 1024 });

function concat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** One frame built by hand around any header bytes. */
function rawFrame(op: number, header: Uint8Array, body: Uint8Array = EMPTY): Uint8Array {
  const prefix = Buffer.alloc(9);
  prefix.writeUInt32BE(5 + header.length + body.length, 0);
  prefix[4] = op;
  prefix.writeUInt32BE(header.length, 5);
  return concat(prefix, header, body);
}

/** The op, header and body of a one-frame message. */
function parts(message: Uint8Array): { op: number; header: Uint8Array; body: Uint8Array } {
  const headerLength = Buffer.from(message).readUInt32BE(5);
  return { op: message[4]!, header: message.subarray(9, 9 + headerLength), body: message.subarray(9 + headerLength) };
}

/** A copy of a one-frame message with `values` written over its header from byte `at`. */
function patched(message: Uint8Array, at: number, ...values: number[]): Uint8Array {
  const out = message.slice();
  out.set(values, 9 + at);
  return out;
}

function compactPublish(fields: Partial<Publish> & { seq: number; queue: string }, headersJson?: string): Uint8Array {
  const frame = { body: EMPTY, ...fields, type: 'publish' } as Publish;
  const w = new FrameWriter();
  assert.ok(w.pushCompactPublish(frame, headersJson ?? (frame.headers === undefined ? null : JSON.stringify(frame.headers))));
  return w.take();
}

/** The fields of a compact deliver: tag `tag`, queue `jobs`, delivery 1, first delivery, unless given. */
function deliverFields(fields: Partial<CompactDeliverFields> & { consumerTag?: string; queue?: string } = {}): CompactDeliverFields {
  const { consumerTag = 'tag', queue = 'jobs', ...rest } = fields;
  return {
    ...{ names: compactDeliverNames(consumerTag, queue)!, deliveryTag: 1, deliveryCount: 1, redelivered: false, backlog: false, publishedAt: 0 },
    ...{ leaseExpiresAt: undefined, priority: 0, messageId: null, headersJson: null },
    ...rest,
  };
}

type DeliverArgs = Partial<Record<'deliveryTag' | 'deliveryCount' | 'publishedAt' | 'leaseExpiresAt' | 'priority', number> & Record<'consumerTag' | 'queue' | 'messageId' | 'headersJson', string>>;
function compactDeliver(a: DeliverArgs = {}): Uint8Array {
  const w = new FrameWriter();
  w.pushCompactDeliver(deliverFields(a), EMPTY);
  return w.take();
}

const HEARTBEAT = encodeFrames([{ type: 'heartbeat' }]);

// ---- arbitraries -------------------------------------------------------------

const queueName = fc.string({ unit: fc.constantFrom(...'ABCXYZabcxyz0189_.:@/-'), minLength: 1, maxLength: 200 });
/**
 * Any code point, with astral ones, multi-byte ones and JSON's escapes made likely. Well-formed
 * strings only: a lone surrogate has no UTF-8 form, and the writers leave such a frame to JSON
 * (tested under the refusals).
 */
const unit = fc.oneof({ weight: 4, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) }, fc.constantFrom('😀', '𝄞', 'é', '€', '\u2028', '\u0000', '"', '\\', 'a'));
/** 1 code point is at most 2 UTF-16 units: `max` ≤ 100 keeps a text within 200 units. */
const text = (min: number, max: number): fc.Arbitrary<string> => fc.string({ unit, minLength: min, maxLength: max });
// JSON has no -0, NaN or Infinity.
const double = fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x));
const headerValue = fc.oneof(text(0, 30), fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), double, fc.boolean(), fc.constant(null));
const headers = fc.dictionary(text(0, 40), headerValue, { maxKeys: 12, noNullPrototype: true });
const body = fc.uint8Array({ maxLength: 512 });
const safeInt = (min: number): fc.Arbitrary<number> => fc.integer({ min, max: Number.MAX_SAFE_INTEGER });

const publishFrame: fc.Arbitrary<Publish> = fc
  .record(
    {
      ...{ seq: safeInt(1), queue: queueName, messageId: text(1, 100), headers, priority: fc.integer({ min: 0, max: 9 }), body },
      ...{ delayMs: fc.integer({ min: 0, max: MAX_MS }), notBefore: fc.integer({ min: 0, max: MAX_TIME }), ttlMs: fc.integer({ min: 0, max: MAX_MS }) },
      resultTtlMs: fc.integer({ min: 1, max: MAX_MS }),
    },
    { requiredKeys: ['seq', 'queue', 'body'] },
  )
  .map((fields) => ({ type: 'publish', ...fields }) as Publish);

const deliverFrame: fc.Arbitrary<Deliver> = fc
  .record(
    {
      ...{ consumerTag: text(1, 100), deliveryTag: safeInt(1), queue: queueName, messageId: text(1, 100), headers, priority: fc.integer({ min: 0, max: 9 }) },
      ...{ deliveryCount: safeInt(1), redelivered: fc.boolean(), publishedAt: safeInt(0), leaseExpiresAt: safeInt(0), backlog: fc.constant(true as const), body },
    },
    { requiredKeys: ['consumerTag', 'deliveryTag', 'queue', 'deliveryCount', 'redelivered', 'publishedAt', 'body'] },
  )
  .map((fields) => ({ type: 'deliver', ...fields }) as Deliver);

/** Writes `frame` compactly into `w`; the frame its JSON form carries (priority 0 is "none" in the compact deliver). */
function writeCompact(w: FrameWriter, frame: Publish | Deliver): Frame {
  const headersJson = frame.headers === undefined ? null : JSON.stringify(frame.headers);
  if (frame.type === 'publish') {
    assert.ok(w.pushCompactPublish(frame, headersJson));
    return frame;
  }
  const f = frame;
  const { consumerTag, queue, deliveryTag, deliveryCount, redelivered, publishedAt, leaseExpiresAt } = f;
  const fields = { consumerTag, queue, deliveryTag, deliveryCount, redelivered, backlog: f.backlog === true, publishedAt, leaseExpiresAt, priority: f.priority ?? 0, messageId: f.messageId ?? null, headersJson };
  w.pushCompactDeliver(deliverFields(fields), f.body);
  const { priority: _zero, ...rest } = f;
  return f.priority === 0 ? rest : f;
}

// ---- tests -------------------------------------------------------------------

describe('compact and JSON forms decode alike', () => {
  for (const [type, frames] of [['publish', publishFrame], ['deliver', deliverFrame]] as const) {
    it(`decodes an arbitrary compact ${type} to the frame its JSON form decodes to`, () => {
      fc.assert(
        fc.property(frames as fc.Arbitrary<Publish | Deliver>, (frame) => {
          const w = new FrameWriter();
          const expected = writeCompact(w, frame);
          const compact = w.take();
          assert.equal(compact[4], CompactOp[type]);
          const fromCompact = decode(compact, LARGE_LIMITS);
          assert.deepEqual(fromCompact.errors, []);
          assert.deepEqual(fromCompact.frames, decode(encodeFrames([expected]), LARGE_LIMITS).frames);
          assert.deepEqual(fromCompact.frames, [expected]);
        }),
        { numRuns: 500 },
      );
    });
  }

  it('decodes a message of mixed compact and JSON frames in order', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.oneof(publishFrame, deliverFrame), fc.boolean()), { minLength: 1, maxLength: 10 }), (batch) => {
        const w = new FrameWriter();
        const expected = batch.map(([frame, compact]) => (compact ? writeCompact(w, frame) : (w.push(frame), frame)));
        const { frames, errors } = decode(w.take(), LARGE_LIMITS);
        assert.deepEqual(errors, []);
        assert.deepEqual(frames, expected);
      }),
      { numRuns: 200 },
    );
  });

  it('carries backlog as bit 5 of a deliver (0x20), and a JSON deliver only as backlog: true [PROTO §5.5]', () => {
    const w = new FrameWriter();
    w.pushCompactDeliver(deliverFields({ backlog: true }), EMPTY);
    const message = w.take();
    assert.equal(parts(message).header[0], 0x20);
    assert.equal((decode(message).frames[0] as Deliver).backlog, true);
    assert.equal('backlog' in (decode(compactDeliver()).frames[0] as Deliver), false);
    const json = { type: 'deliver', consumerTag: 'c', deliveryTag: 1, queue: 'jobs', deliveryCount: 1, redelivered: false, publishedAt: 0, body: EMPTY } as const;
    assert.equal((decode(encodeFrames([{ ...json, backlog: true }])).frames[0] as Deliver).backlog, true);
    const refused = decode(encodeFrames([{ ...json, backlog: false as true }]));
    assert.deepEqual(refused.errors.map((e) => e.code), ['E_FRAME_INVALID']);
  });

  it('encodes the publish of the spec example to its 25 compact bytes [PROTO §2.5]', () => {
    const message = compactPublish({ seq: 1, queue: 'jobs', body: utf8.encode('hi') });
    assert.equal(Buffer.from(message).toString('hex'), '00000015170000000e003ff0000000000000046a6f62736869');
    assert.deepEqual(decode(message).frames, [{ type: 'publish', seq: 1, queue: 'jobs', body: utf8.encode('hi') }]);
  });
});

describe('name cache', () => {
  /** Names the cache is likely to confuse: equal lengths, same first and last byte. */
  const name = fc.string({ unit: fc.constantFrom('a', 'b', '_'), minLength: 1, maxLength: 4 });

  it('gives the right queue name and consumer tag each time a name repeats, whichever names share a slot', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(name, name, fc.boolean()), { minLength: 2, maxLength: 30 }), (uses) => {
        const messages = uses.map(([queue, tag, isPublish]) => (isPublish ? compactPublish({ seq: 1, queue }) : compactDeliver({ consumerTag: tag, queue })));
        // One message each (the cache outlives a message), then all in one.
        const one = messages.map((m) => decode(m).frames[0]);
        const { frames } = decode(concat(...messages));
        for (const decoded of [one, frames]) {
          assert.deepEqual(
            decoded.map((f) => (f?.type === 'publish' ? f.queue : f?.type === 'deliver' ? `${f.consumerTag} ${f.queue}` : f)),
            uses.map(([queue, tag, isPublish]) => (isPublish ? queue : `${tag} ${queue}`)),
          );
        }
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a queue name again after a valid name of the same length and ends was cached', () => {
    for (let round = 0; round < 2; round++) {
      assert.equal((decode(compactPublish({ seq: 1, queue: 'a1z' })).frames[0] as Publish).queue, 'a1z');
      const bad = decode(compactPublish({ seq: 2, queue: 'a z' }));
      assert.deepEqual([bad.frames.length, bad.errors[0]?.code, bad.errors[0]?.seq], [0, 'E_FRAME_INVALID', 2]);
      const deliver = decode(compactDeliver({ queue: 'a z' }));
      assert.deepEqual([deliver.frames.length, deliver.errors[0]?.code], [0, 'E_FRAME_INVALID']);
    }
  });

  it('keeps consumer tags apart from queue names, and refuses a bad tag again after a good one', () => {
    // A tag may hold a space; the same bytes as a queue name may not.
    assert.equal((decode(compactDeliver({ consumerTag: 'a z', queue: 'jobs' })).frames[0] as Deliver).consumerTag, 'a z');
    assert.equal(decode(compactDeliver({ consumerTag: 'a z', queue: 'a z' })).errors[0]?.code, 'E_FRAME_INVALID');
    assert.equal(decode(compactPublish({ seq: 1, queue: 'a z' })).errors[0]?.code, 'E_FRAME_INVALID');
    const badTag = patched(compactDeliver({ consumerTag: 'a1z' }), 28, 0xff); // tag bytes start at 27
    for (let round = 0; round < 2; round++) {
      assert.equal((decode(compactDeliver({ consumerTag: 'a1z' })).frames[0] as Deliver).consumerTag, 'a1z');
      assert.deepEqual(decode(badTag).errors.map((e) => e.code), ['E_FRAME_MALFORMED']);
    }
  });
});

describe('bad compact headers', () => {
  const MALFORMED = 'E_FRAME_MALFORMED';
  const INVALID = 'E_FRAME_INVALID';
  const p = (fields: Partial<Publish>, headersJson?: string): Uint8Array => compactPublish({ seq: 5, queue: 'jobs', ...fields }, headersJson);
  // Header offsets of `p({messageId: 'ab'})`: flags 0, seq 1–8, queue 9–13, id length 14–15, id 16–17.
  const publishCases: Array<{ name: string; message: Uint8Array; code: string; seq?: number }> = [
    { name: 'an unknown flag bit', message: patched(p({}), 0, 0x80), code: INVALID, seq: 5 },
    { name: 'seq 0', message: p({ seq: 0 }), code: INVALID },
    { name: 'seq 1.5', message: p({ seq: 1.5 }), code: INVALID },
    { name: 'seq 2^53', message: p({ seq: 2 ** 53 }), code: INVALID },
    { name: 'priority 10', message: p({ priority: 10 }), code: INVALID, seq: 5 },
    { name: 'a negative delayMs', message: p({ delayMs: -1 }), code: INVALID, seq: 5 },
    { name: 'a delayMs over MAX_MS', message: p({ delayMs: MAX_MS + 1 }), code: INVALID, seq: 5 },
    { name: 'a notBefore over MAX_TIME', message: p({ notBefore: MAX_TIME + 1 }), code: INVALID, seq: 5 },
    { name: 'a ttlMs of 1.5', message: p({ ttlMs: 1.5 }), code: INVALID, seq: 5 },
    { name: 'a resultTtlMs of 0', message: p({ resultTtlMs: 0 }), code: INVALID, seq: 5 },
    { name: 'a queue name with a space', message: p({ queue: 'a b' }), code: INVALID, seq: 5 },
    { name: 'a queue name of 201 characters', message: p({ queue: 'q'.repeat(201) }), code: INVALID, seq: 5 },
    { name: 'an empty queue name', message: p({ queue: '' }), code: INVALID, seq: 5 },
    { name: 'a messageId of 0 bytes', message: p({ messageId: '' }), code: INVALID, seq: 5 },
    { name: 'a messageId of 201 characters', message: p({ messageId: 'm'.repeat(201) }), code: INVALID, seq: 5 },
    { name: 'invalid UTF-8 in the messageId', message: patched(p({ messageId: 'ab' }), 16, 0xc3, 0x28), code: MALFORMED, seq: 5 },
    { name: 'headers JSON that is an array', message: p({}, '[1,2]'), code: INVALID, seq: 5 },
    { name: 'headers with an object value', message: p({}, '{"a":{"b":1}}'), code: INVALID, seq: 5 },
    { name: 'headers JSON that is null', message: p({}, 'null'), code: INVALID, seq: 5 },
    { name: 'headers that are not JSON', message: p({}, '{nope'), code: MALFORMED, seq: 5 },
    { name: 'headers that are not UTF-8', message: patched(p({}, '{"a":"xy"}'), 20, 0xff), code: MALFORMED, seq: 5 },
    { name: 'a headers flag with no headers', message: p({}, ''), code: MALFORMED, seq: 5 },
    { name: 'a trailing byte', message: (({ op, header }) => rawFrame(op, concat(header, new Uint8Array([0]))))(parts(p({}))), code: MALFORMED, seq: 5 },
  ];
  for (const c of publishCases) {
    it(`refuses a compact publish with ${c.name} as ${c.code}${c.seq === undefined ? ' without a seq' : ' naming its seq'}, and decodes the next frame`, () => {
      const { frames, errors } = decode(concat(c.message, HEARTBEAT));
      assert.deepEqual(frames, [{ type: 'heartbeat' }]);
      assert.equal(errors.length, 1);
      assert.deepEqual([errors[0]?.code, errors[0]?.type, errors[0]?.seq], [c.code, 'publish', c.seq]);
      assert.match(errors[0]!.message, /publish \(compact header\)/);
    });
  }

  const deliverCases: Array<{ name: string; message: Uint8Array; code: string }> = [
    { name: 'an unknown flag bit', message: patched(compactDeliver(), 0, 0x40), code: INVALID },
    { name: 'deliveryTag 0', message: compactDeliver({ deliveryTag: 0 }), code: INVALID },
    { name: 'deliveryCount 0.5', message: compactDeliver({ deliveryCount: 0.5 }), code: INVALID },
    { name: 'a negative publishedAt', message: compactDeliver({ publishedAt: -1 }), code: INVALID },
    { name: 'a leaseExpiresAt of 2^53', message: compactDeliver({ leaseExpiresAt: 2 ** 53 }), code: INVALID },
    { name: 'a consumer tag of 0 bytes', message: compactDeliver({ consumerTag: '' }), code: INVALID },
    { name: 'a consumer tag of 201 characters', message: compactDeliver({ consumerTag: 't'.repeat(201) }), code: INVALID },
    { name: 'a queue name with a space', message: compactDeliver({ queue: 'a b' }), code: INVALID },
    { name: 'priority 10', message: compactDeliver({ priority: 10 }), code: INVALID },
    { name: 'a messageId of 0 bytes', message: compactDeliver({ messageId: '' }), code: INVALID },
    { name: 'headers JSON that is an array', message: compactDeliver({ headersJson: '[]' }), code: INVALID },
    { name: 'headers that are not JSON', message: compactDeliver({ headersJson: '{"a":' }), code: MALFORMED },
    { name: 'a trailing byte', message: (({ op, header }) => rawFrame(op, concat(header, new Uint8Array([9]))))(parts(compactDeliver())), code: MALFORMED },
  ];
  for (const c of deliverCases) {
    it(`refuses a compact deliver with ${c.name} as ${c.code}, and decodes the next frame`, () => {
      const { frames, errors } = decode(concat(c.message, HEARTBEAT));
      assert.deepEqual(frames, [{ type: 'heartbeat' }]);
      assert.deepEqual(errors.map((e) => [e.code, e.type, e.seq]), [[c.code, 'deliver', undefined]]);
    });
  }

  it('refuses a header cut short at every length as E_FRAME_MALFORMED, naming the seq once it was read', () => {
    const full: Publish = { type: 'publish', seq: 77, queue: 'jobs', messageId: 'id-€', headers: { a: 1 }, priority: 3, delayMs: 10, notBefore: 20, ttlMs: 30, resultTtlMs: 40, body: utf8.encode('body') };
    const deliver: Deliver = { type: 'deliver', consumerTag: 'c-1', deliveryTag: 8, queue: 'jobs', messageId: 'm', headers: { b: 'x' }, priority: 2, deliveryCount: 1, redelivered: true, publishedAt: 5, leaseExpiresAt: 6, body: utf8.encode('body') };
    for (const frame of [full, deliver]) {
      const w = new FrameWriter();
      writeCompact(w, frame);
      const { op, header, body: bytes } = parts(w.take());
      for (let cut = 0; cut < header.length; cut++) {
        const { frames, errors } = decode(rawFrame(op, header.subarray(0, cut), bytes));
        assert.equal(frames.length, 0, `${frame.type} cut at ${cut}`);
        assert.deepEqual(errors.map((e) => [e.code, e.type, e.seq]), [['E_FRAME_MALFORMED', frame.type, frame.type === 'publish' && cut >= 9 ? 77 : undefined]], `${frame.type} cut at ${cut}`);
      }
    }
  });

  const checkers = { publish: TypeCompiler.Compile(HeaderSchemas.publish), deliver: TypeCompiler.Compile(HeaderSchemas.deliver) };
  /** One event per frame: an error of check 7 or 9, or a frame that the JSON rules accept too. */
  function assertOneOutcome(op: number, header: Uint8Array, bytes: Uint8Array): void {
    const { frames, errors, events } = decode(rawFrame(op, header, bytes));
    assert.equal(events.length, 1);
    const type = op === CompactOp.publish ? 'publish' : 'deliver';
    for (const e of errors) assert.ok((e.code === 'E_FRAME_MALFORMED' || e.code === 'E_FRAME_INVALID') && e.type === type, JSON.stringify(e));
    for (const { type: t, body: _b, ...fields } of frames as Array<Publish | Deliver>) {
      assert.equal(t, type);
      assert.ok(checkers[type].Check(fields), JSON.stringify(fields));
    }
  }

  it('never throws on arbitrary bytes as a compact header, and gives one frame or one error', () => {
    fc.assert(
      fc.property(fc.constantFrom(CompactOp.publish, CompactOp.deliver), fc.uint8Array({ maxLength: 300 }), body, assertOneOutcome),
      { numRuns: 2000 },
    );
  });

  it('never throws on a valid compact header with bytes overwritten, and gives one frame or one error', () => {
    fc.assert(
      fc.property(fc.oneof(publishFrame, deliverFrame), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (frame, edits) => {
        const w = new FrameWriter();
        writeCompact(w, frame);
        const { op, header, body: bytes } = parts(w.take());
        const edited = header.slice();
        for (const [at, value] of edits) if (edited.length > 0) edited[at % edited.length] = value;
        assertOneOutcome(op, edited, bytes);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('FrameWriter.pushCompactPublish refusals', () => {
  const refusals: Array<[string, Partial<Publish>]> = [
    ['a queue of 256 ASCII bytes', { queue: 'q'.repeat(256) }],
    ['a queue of 258 UTF-8 bytes in 86 characters', { queue: '€'.repeat(86) }],
    ['a messageId of 65,536 UTF-8 bytes', { messageId: 'm'.repeat(65_536) }],
    ['priority 1.5', { priority: 1.5 }],
    ['priority 300', { priority: 300 }],
    ['priority -1', { priority: -1 }],
    ['a delayMs that is a string', { delayMs: '5' as unknown as number }],
    ['a ttlMs that is null', { ttlMs: null as unknown as number }],
    ['a messageId with a lone surrogate', { messageId: 'a\ud800' }],
  ];
  for (const [name, fields] of refusals) {
    it(`returns false and writes nothing for ${name}`, () => {
      const w = new FrameWriter(64);
      w.push({ type: 'heartbeat' });
      const before = [w.length, w.count];
      assert.equal(w.pushCompactPublish({ type: 'publish', seq: 1, queue: 'jobs', body: utf8.encode('x'), ...fields } as Publish, null), false);
      assert.deepEqual([w.length, w.count], before);
      assert.deepEqual(decode(w.take()).frames, [{ type: 'heartbeat' }]);
    });
  }

  it('leaves a deliver whose message id or consumer tag holds a lone surrogate to JSON, which keeps it', () => {
    const w = new FrameWriter(64);
    assert.equal(compactDeliverNames('c\udc00', 'jobs'), null);
    assert.equal(w.pushCompactDeliver(deliverFields({ consumerTag: 'c', messageId: 'm\ud800' }), EMPTY), false);
    assert.deepEqual([w.length, w.count], [0, 0]);
    w.push({ type: 'deliver', consumerTag: 'c\udc00', deliveryTag: 1, queue: 'jobs', messageId: 'm\ud800', deliveryCount: 1, redelivered: false, publishedAt: 0, body: EMPTY });
    const [frame] = decode(w.take()).frames as Deliver[];
    assert.deepEqual([frame?.consumerTag, frame?.messageId], ['c\udc00', 'm\ud800']);
  });

  it('writes the largest queue and messageId the length fields hold, for the decoder to refuse', () => {
    for (const fields of [{ queue: 'q'.repeat(255) }, { messageId: 'm'.repeat(65_535) }]) {
      const { errors } = decode(compactPublish({ seq: 3, queue: 'jobs', ...fields }), LARGE_LIMITS);
      assert.deepEqual(errors.map((e) => [e.code, e.seq]), [['E_FRAME_INVALID', 3]]);
    }
  });
});

describe('size limits on compact frames', () => {
  const LIMITS: Readonly<DecodeLimits> = Object.freeze({ maxHeaderBytes: 40, maxBodyBytes: 16 });

  it('accepts a compact header of exactly maxHeaderBytes and refuses one byte more as E_FRAME_TOO_LARGE', () => {
    // flags, seq, queue: 1 + 8 + 1 + 30 = 40 bytes.
    const publish = decode(concat(compactPublish({ seq: 4, queue: 'q'.repeat(30) }), compactPublish({ seq: 5, queue: 'q'.repeat(31) })), LIMITS);
    assert.deepEqual(publish.frames.map((f) => (f as Publish).seq), [4]);
    assert.deepEqual(publish.errors.map((e) => [e.code, e.type, e.seq]), [['E_FRAME_TOO_LARGE', 'publish', undefined]]);
    // flags, three f64, tag, queue: 1 + 24 + (2 + 8) + (1 + 4) = 40 bytes.
    const deliver = decode(concat(compactDeliver({ consumerTag: 't'.repeat(8) }), compactDeliver({ consumerTag: 't'.repeat(9) })), LIMITS);
    assert.deepEqual(deliver.frames.map((f) => (f as Deliver).consumerTag), ['t'.repeat(8)]);
    assert.deepEqual(deliver.errors.map((e) => [e.code, e.type]), [['E_FRAME_TOO_LARGE', 'deliver']]);
  });

  it('accepts a compact body of exactly maxBodyBytes and refuses one byte more as E_MESSAGE_TOO_LARGE, with a publish seq', () => {
    const fits = compactPublish({ seq: 6, queue: 'jobs', body: new Uint8Array(16) });
    const over = compactPublish({ seq: 7, queue: 'jobs', body: new Uint8Array(17) });
    const w = new FrameWriter();
    w.pushCompactDeliver(deliverFields({ consumerTag: 't' }), new Uint8Array(17));
    const { frames, errors } = decode(concat(fits, over, w.take(), HEARTBEAT), LIMITS);
    assert.deepEqual(frames.map((f) => f.type === 'publish' ? f.seq : f.type), [6, 'heartbeat']);
    assert.deepEqual(errors.map((e) => [e.code, e.type, e.seq]), [['E_MESSAGE_TOO_LARGE', 'publish', 7], ['E_MESSAGE_TOO_LARGE', 'deliver', undefined]]);
  });
});
