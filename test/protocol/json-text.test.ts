/**
 * `jsonString` (protocol/json-text.ts) writes the JSON text of a string for the headers written
 * by hand (the SDK's publish, the broker's deliver): it must be exactly what `JSON.stringify`
 * writes, for every string, escapes and lone surrogates included.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { jsonString } from '../../protocol/index.js';

describe('jsonString', () => {
  it('is JSON.stringify of any string', () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.uuid());
    fc.assert(
      fc.property(text, (value) => {
        assert.equal(jsonString(value), JSON.stringify(value));
      }),
      { numRuns: 5000 },
    );
  });

  it('escapes what JSON must, and leaves plain ids as they are', () => {
    for (const value of ['', 'q', 'a"b', 'back\\slash', 'tab\there', 'nul\u0000', '\u001f', '\u2028', '\ud800', 'x\udfff', '😀', 'ünï'])
      assert.equal(jsonString(value), JSON.stringify(value), value);
    assert.equal(jsonString('5dcf697b-f58f-4ccd-b615-f4a42f34d390'), '"5dcf697b-f58f-4ccd-b615-f4a42f34d390"');
  });
});
