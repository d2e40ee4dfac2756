import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idleConnectionFigure } from '../../bench/workloads.js';

const MB = 1024 * 1024;

describe('w8 idle connections: the per-connection figure', () => {
  it('divides the RSS grown over the baseline by the connections opened', () => {
    assert.deepEqual(idleConnectionFigure(100 * MB + 5000 * 12 * 1024, 100 * MB, 5000), { perConnKb: 12 });
  });

  it('says the figure is noise when RSS ended below its baseline', () => {
    const figure = idleConnectionFigure(19 * MB, 20 * MB, 5000);
    assert.ok(figure.perConnKb !== null && figure.perConnKb < 0);
    assert.match(figure.note ?? '', /^RSS was 1\.0 MB lower with the connections open than without/);
  });

  it('has no figure when no connection opened', () => {
    assert.equal(idleConnectionFigure(20 * MB, 20 * MB, 0).perConnKb, null);
  });
});
