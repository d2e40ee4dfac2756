/**
 * The parser of packed ready rows on its own: what the store's own SQL never produces (a number
 * SQLite stored as REAL, damaged bytes) must parse or fail with a message, never come back wrong.
 * The round trip through SQLite is the store conformance suite's.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseReadyPage } from '../../storage/ready-page.js';

const packed = (text: string): Buffer => Buffer.from(text);

describe('parseReadyPage', () => {
  it('reads rows back to back, with NULL fields empty and texts by their UTF-8 length', () => {
    const headers = '{"k":"é"}';
    const blob = packed(`7,3,0,1700,,2,,,${Buffer.byteLength(headers)}:${headers}8,4,2,1701,9000,0,${5 * 2 ** 32 + 40 * 2 ** 16},5,:a😀`);
    const { records, bodyLengths, bodyRuns, bodyOffsets } = parseReadyPage(blob, 11, 4, 0);
    assert.deepEqual(bodyLengths, [2, 0]);
    assert.deepEqual(bodyRuns, [null, 3]);
    assert.deepEqual(bodyOffsets, [null, 40]);
    assert.deepEqual(
      records.map(({ body, ...r }) => ({ ...r, body: body.length })),
      [
        { id: 7, queueId: 11, seq: 3, priority: 4, messageId: null, headers: { k: 'é' }, body: 0, deliveryCount: 0, publishedAt: 1700, expiresAt: null },
        { id: 8, queueId: 11, seq: 4, priority: 4, messageId: 'a😀', headers: null, body: 0, deliveryCount: 2, publishedAt: 1701, expiresAt: 9000 },
      ],
    );
  });

  it('counts a never-delivered row under the lane mark as delivered once', () => {
    const { records } = parseReadyPage(packed('1,5,0,1,,0,,,:2,6,0,1,,0,,,:'), 1, 0, 5);
    assert.deepEqual(records.map((r) => r.deliveryCount), [1, 0]);
  });

  it('reads a number SQLite wrote as REAL', () => {
    const { records } = parseReadyPage(packed('1,2,0,1700.5,1.5e+15,0,,,:'), 1, 0, 0);
    assert.equal(records[0]!.publishedAt, 1700.5);
    assert.equal(records[0]!.expiresAt, 1.5e15);
  });

  it('gives back no records for an empty blob', () => {
    assert.deepEqual(parseReadyPage(Buffer.alloc(0), 1, 0, 0), { records: [], bodyLengths: [], bodyRuns: [], bodyOffsets: [] });
  });

  for (const [damage, text, message] of [
    ['a text running past the end', '1,2,0,3,,0,,9,:abc', /9 bytes of text at byte \d+ run past/],
    ['a field that is no number', '1,x2,0,3,,0,,,:', /no number at byte 2/],
    ['a required field left empty', '1,,0,3,,0,,,:', /seq is empty/],
    ['a row cut short', '1,2,0,3', /no number at byte 6/],
    ['fields ending early', '1,2,0,3,,0:', /no number|do not end/],
    ['a body reference whose length is not the body\'s', '1,2,0,3,,5,7,,:', /a body run's length is not the body's/],
  ] as const) {
    it(`refuses ${damage} with an error that says where`, () => {
      assert.throws(() => parseReadyPage(packed(text), 1, 0, 0), message);
    });
  }
});
