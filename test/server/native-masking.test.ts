/**
 * `bufferutil` is an optional dependency because `ws` masks every client frame and unmasks it
 * again on the broker, and does both in native code when `bufferutil` loads (w1 68.5k -> 71.3k
 * msgs/s, w4 41.0k -> 42.8k, medians of 5 pairs). On a platform it ships a prebuild for, the install
 * must give `ws` the native path; elsewhere `ws` falls back to its own loop, which must mask the same.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';

// Resolved from ws's own folder: the copy ws would load, wherever npm placed it.
const requireFromWs = createRequire(createRequire(import.meta.url).resolve('ws'));
const wsBufferUtil = requireFromWs('./lib/buffer-util.js') as {
  mask(source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number): void;
  unmask(buffer: Buffer, mask: Buffer): void;
};

/** The `prebuilds/` folders of bufferutil 4.1: where `npm ci` needs no compiler to install it. */
const PREBUILT_PLATFORMS = ['linux-x64', 'darwin-x64', 'darwin-arm64', 'win32-x64', 'win32-ia32'];

function xorMask(source: Buffer, key: Buffer): Buffer {
  return Buffer.from(source.map((byte, i) => byte ^ key[i & 3]!));
}

describe('frame masking', () => {
  it('loads bufferutil natively on the platforms it ships a prebuild for', (t) => {
    const platform = `${process.platform}-${process.arch}`;
    if (!PREBUILT_PLATFORMS.includes(platform)) {
      t.diagnostic(`${platform}: no prebuild, ws masks with its own loop (checked below)`);
      return;
    }
    const bufferUtil = requireFromWs('bufferutil') as { mask: () => void };
    assert.match(Function.prototype.toString.call(bufferUtil.mask), /\[native code\]/);
  });

  it('masks and unmasks a 256-byte body the way RFC 6455 defines it', () => {
    const body = Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 37) & 0xff));
    const key = Buffer.from([0x9e, 0x01, 0xff, 0x42]);
    const masked = Buffer.alloc(body.length + 10);
    wsBufferUtil.mask(body, key, masked, 10, body.length);
    assert.deepEqual(masked.subarray(10), xorMask(body, key));
    const unmasked = Buffer.from(masked.subarray(10));
    wsBufferUtil.unmask(unmasked, key);
    assert.deepEqual(unmasked, body);
  });
});
