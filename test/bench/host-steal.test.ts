/** The bench's reading of host CPU steal from /proc/stat (bench/lib/proc.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostTicks, parseHostTicks, stealPct } from '../../bench/lib/proc.js';

const STAT = (user: number, steal: number, guest = 0): string =>
  `cpu  ${user} 0 300 5000 20 0 10 ${steal} ${guest} 0\ncpu0 1 0 1 1 0 0 0 0 0 0\nintr 123\n`;

describe('host CPU steal', () => {
  it('reads the total of the first eight fields of the cpu line, guest time excluded, and its steal', () => {
    assert.deepEqual(parseHostTicks(STAT(1000, 70, 400)), { total: 1000 + 300 + 5000 + 20 + 10 + 70, steal: 70 });
  });

  it('gives the stolen share of the time between two readings', () => {
    const from = parseHostTicks(STAT(1000, 70));
    const to = parseHostTicks(STAT(1180, 90)); // 200 more ticks, 20 of them stolen
    assert.equal(stealPct(from, to), 10);
  });

  it('gives null, never a figure, for what it cannot read', () => {
    assert.equal(parseHostTicks(''), null);
    assert.equal(parseHostTicks('intr 1 2 3\n'), null);
    assert.equal(parseHostTicks('cpu 1 2 3\n'), null);
    assert.equal(parseHostTicks('cpu 1 2 3 4 5 6 7 x 9 10\n'), null);
    assert.equal(stealPct(null, parseHostTicks(STAT(1, 1))), null);
    const same = parseHostTicks(STAT(1, 1));
    assert.equal(stealPct(same, same), null);
  });

  it('reads this machine\'s /proc/stat (the bench runs on Linux)', () => {
    const ticks = hostTicks();
    assert.ok(ticks !== null && ticks.total > 0 && ticks.steal >= 0 && ticks.steal <= ticks.total);
  });
});
