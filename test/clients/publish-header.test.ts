/**
 * The SDK writes a publish's JSON header by hand (clients/publish-header.ts): it must say what
 * `JSON.stringify` of the frame's fields would, for any queue name, message id and options,
 * including strings that need escaping and values JSON cannot hold.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { publishHeader } from '../../clients/publish-header.js';
import { decodeFrames, DEFAULT_DECODE_LIMITS, FrameWriter, type FrameOf } from '../../protocol/index.js';

/** What the SDK sent before: the frame without `type` and `body`, through JSON.stringify. */
function stringified(frame: FrameOf<'publish'>): unknown {
  const { type: _type, body: _body, ...fields } = frame;
  return JSON.parse(JSON.stringify(fields));
}

const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.constantFrom('', 'q', 'a"b', 'back\\slash', 'tab\there', 'line\nbreak', '\u2028', '\ud800'));
const number = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(Number.NaN, Infinity, -0));
const publishFrame: fc.Arbitrary<FrameOf<'publish'>> = fc.record(
  {
    seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    queue: fc.oneof(text, fc.stringMatching(/^[\w.:@/-]{1,40}$/)),
    messageId: fc.oneof(text, fc.uuid()),
    headers: fc.dictionary(text, fc.oneof(text, number, fc.boolean(), fc.constant(null))),
    priority: number,
    delayMs: number,
    notBefore: number,
    ttlMs: number,
    resultTtlMs: number,
  },
  { requiredKeys: ['seq', 'queue'] },
).map((fields) => ({ type: 'publish', body: new Uint8Array(0), ...fields }) as FrameOf<'publish'>);

describe('publish header written by hand', () => {
  it('parses to the fields JSON.stringify would have written, in any case', () => {
    fc.assert(
      fc.property(publishFrame, (frame) => {
        const header: unknown = JSON.parse(publishHeader(frame));
        assert.deepEqual(header, stringified(frame));
      }),
      { numRuns: 2000 },
    );
  });

  it('writes the usual fields as a template would, and a changed seq', () => {
    const frame = { type: 'publish', seq: 1, queue: 'orders', messageId: 'm-1', priority: 3, body: new Uint8Array([1]) } as FrameOf<'publish'>;
    assert.equal(publishHeader(frame), '{"seq":1,"queue":"orders","messageId":"m-1","priority":3}');
    frame.seq = 42;
    assert.equal(publishHeader(frame), '{"seq":42,"queue":"orders","messageId":"m-1","priority":3}');
  });

  it('decodes as a publish frame with its body when written through the frame writer', () => {
    const body = new TextEncoder().encode('héllo');
    const frame = { type: 'publish', seq: 7, queue: 'q', messageId: 'a"b\\c', headers: { 'ünï': 'cödé', n: 1 }, body } as FrameOf<'publish'>;
    const writer = new FrameWriter(8);
    writer.pushJson('publish', publishHeader(frame), frame.body);
    const decoded: unknown[] = [];
    decodeFrames(writer.take(), DEFAULT_DECODE_LIMITS, (f) => decoded.push(f), (e) => assert.fail(e.message));
    assert.deepEqual(decoded, [frame]);
  });
});
