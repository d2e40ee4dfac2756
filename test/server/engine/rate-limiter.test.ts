import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BrokerError } from '../../../protocol/index.js';
import { RateLimiter, parseRate, type Rate } from '../../../server/engine/rate-limiter.js';

/** The documented burst: 20 ms worth of events, at least one. */
function burstOf(rate: Rate): number {
  return Math.max(1, Math.floor(20 / (rate.perMs / rate.count)));
}

/** Most allowed events in any half-open window [t, t + windowMs). `times` ascending. */
function maxInWindow(times: number[], windowMs: number): number {
  let max = 0;
  let start = 0;
  for (let end = 0; end < times.length; end++) {
    while (times[end]! - times[start]! >= windowMs) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}

describe('parseRate', () => {
  it('accepts a count per second, minute or hour, including fractional counts', () => {
    assert.deepEqual(parseRate('100/s'), { count: 100, perMs: 1000 });
    assert.deepEqual(parseRate('60/m'), { count: 60, perMs: 60_000 });
    assert.deepEqual(parseRate('1.5/h'), { count: 1.5, perMs: 3_600_000 });
    assert.deepEqual(parseRate('0.5/s'), { count: 0.5, perMs: 1000 });
  });

  it('rejects a zero count, an unknown unit and malformed text with E_INVALID_ARGUMENT', () => {
    for (const text of ['0/s', '0.0/m', '10/d', 'abc', '', '-1/s', '1e3/s', '100 /s', ' 100/s', '100/S', '.5/s', '5./s', '100', '/s', '100/sec']) {
      assert.throws(
        () => parseRate(text),
        (err: unknown) => {
          assert.ok(err instanceof BrokerError, `${JSON.stringify(text)} throws a BrokerError`);
          assert.equal(err.code, 'E_INVALID_ARGUMENT');
          assert.equal(err.retryable, false);
          assert.ok(err.message.includes(JSON.stringify(text)), `the message names the input: ${err.message}`);
          return true;
        },
        JSON.stringify(text),
      );
    }
  });
});

describe('RateLimiter', () => {
  it('allows a burst of 20 ms worth of events at once, and at least one', () => {
    const cases: Array<[string, number]> = [
      ['2500/s', 50],
      ['1000/s', 20],
      ['125/s', 2], // 2.5 intervals in 20 ms: rounds down
      ['100/s', 2],
      ['70/s', 1],
      ['50/s', 1],
      ['10/s', 1],
      ['60/m', 1],
      ['1.5/h', 1],
    ];
    for (const [text, burst] of cases) {
      assert.equal(burstOf(parseRate(text)), burst, `${text}: the test's formula`);
      const limiter = new RateLimiter(parseRate(text));
      let allowed = 0;
      while (allowed <= 1000 && limiter.tryTake(5000)) allowed++;
      assert.equal(allowed, burst, text);
    }
  });

  it('sustains the configured rate when asked more often than it allows', () => {
    const limiter = new RateLimiter(parseRate('100/s'));
    let allowed = 0;
    for (let now = 0; now < 10_000; now++) if (limiter.tryTake(now)) allowed++;
    // 10 s at 100/s, plus at most the burst of 2.
    assert.ok(allowed >= 1000 && allowed <= 1002, `allowed ${allowed}`);
  });

  it('nextAt is the first time tryTake succeeds again after a refusal', () => {
    const limiter = new RateLimiter(parseRate('100/s'));
    assert.equal(limiter.tryTake(0), true);
    assert.equal(limiter.tryTake(0), true);
    assert.equal(limiter.tryTake(0), false);
    assert.equal(limiter.nextAt(), 10);
    assert.equal(limiter.tryTake(9), false);
    assert.equal(limiter.tryTake(limiter.nextAt()), true);
  });

  it('a refused tryTake does not push nextAt further away', () => {
    const limiter = new RateLimiter(parseRate('10/s'));
    assert.equal(limiter.tryTake(1000), true);
    const next = limiter.nextAt();
    for (let now = 1000; now < next; now += 7) assert.equal(limiter.tryTake(now), false);
    assert.equal(limiter.nextAt(), next);
  });

  it('is idle once its next theoretical event time has passed', () => {
    const limiter = new RateLimiter(parseRate('100/s'));
    assert.equal(limiter.idle(1), true, 'a fresh limiter is idle');
    limiter.tryTake(0);
    assert.equal(limiter.idle(5), false);
    assert.equal(limiter.idle(10), false);
    assert.equal(limiter.idle(11), true);
  });

  it('decides from the given now alone: no clock reads, no timers, same answers for the same times', (t) => {
    const dateNow = t.mock.method(Date, 'now');
    const perfNow = t.mock.method(performance, 'now');
    const setTimeoutSpy = t.mock.method(globalThis, 'setTimeout');
    const setIntervalSpy = t.mock.method(globalThis, 'setInterval');
    const times = Array.from({ length: 500 }, (_, i) => 1_000_000 + Math.floor(i * 3.7));
    const run = () => {
      const limiter = new RateLimiter(parseRate('200/s'));
      return times.map((now) => [limiter.tryTake(now), limiter.nextAt(), limiter.idle(now)]);
    };
    const first = run();
    assert.deepEqual(run(), first);
    assert.equal(dateNow.mock.callCount(), 0);
    assert.equal(perfNow.mock.callCount(), 0);
    assert.equal(setTimeoutSpy.mock.callCount(), 0);
    assert.equal(setIntervalSpy.mock.callCount(), 0);
  });

  it('never allows more than count events plus the burst in any window of perMs, nor more than burst + w / interval in any window of w', () => {
    const rateText = fc
      .tuple(
        fc.oneof(fc.integer({ min: 1, max: 5000 }).map(String), fc.integer({ min: 1, max: 500 }).map((n) => String(n / 10))),
        fc.constantFrom('s', 'm', 'h'),
      )
      .map(([count, unit]) => `${count}/${unit}`);
    // Gaps between attempts, as fractions of the rate's interval: often none, sometimes several intervals.
    const gaps = fc.array(fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 5, noNaN: true })), {
      minLength: 1,
      maxLength: 400,
      size: 'max',
    });
    fc.assert(
      fc.property(rateText, fc.integer({ min: 0, max: 2e12 }), gaps, (text, start, fractions) => {
        const rate = parseRate(text);
        const intervalMs = rate.perMs / rate.count;
        const burst = burstOf(rate);
        const limiter = new RateLimiter(rate);
        const allowed: number[] = [];
        let now = start;
        for (const f of fractions) {
          now += f * intervalMs;
          if (limiter.tryTake(now)) allowed.push(now);
        }
        const documented = maxInWindow(allowed, rate.perMs);
        assert.ok(documented <= rate.count + burst, `${text}: ${documented} events in one window of ${rate.perMs} ms, limit ${rate.count} + ${burst}`);
        // The same bound for shorter windows, where a few hundred attempts can reach it.
        for (const intervals of [1, 2, 3, 10, 50]) {
          const windowMs = intervals * intervalMs;
          const seen = maxInWindow(allowed, windowMs);
          assert.ok(seen <= burst + intervals, `${text}: ${seen} events in ${intervals} intervals, limit ${burst} + ${intervals}`);
        }
      }),
      { numRuns: 500 },
    );
  });
});
