/**
 * JSON text of a string, for the frame headers written by hand (the SDK's publish header, the
 * broker's deliver header).
 *
 * Queue names and message ids need no escapes, and a loop over their characters finds that
 * sooner than `JSON.stringify` or a regular expression would: with this in place of
 * `JSON.stringify` for each delivery's message id, the broker's main thread went from 34.1k to
 * 32.2k instructions per message consumed at prefetch 1000 (callgrind, steady state, 2026-12-07).
 */
export function jsonString(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // Control characters, `"` and `\` are escaped; so are lone surrogates, and pairs are rare.
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(value);
  }
  return `"${value}"`;
}
