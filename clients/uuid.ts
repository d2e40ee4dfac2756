/** UUID text shared by the SDK's id makers (message ids, task ids). */

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** 16 bytes as a lowercase, hyphenated UUID (8-4-4-4-12 hex digits); the caller sets version and variant. */
export function formatUuid(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += '-';
    out += HEX[bytes[i]!]!;
  }
  return out;
}
