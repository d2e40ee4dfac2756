/** Reading callgrind's dumps for `npm run bench:instructions` (bench/lib/callgrind.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { callgrindTotal, dumpFiles } from '../../bench/lib/callgrind.js';

// The head of a dump as callgrind 3.19 writes it after `callgrind_control -d` (cut short).
const DUMP = `# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 17693
cmd:  node dist/bin/berth.js serve --port 0 --data /tmp/d
part: 1

desc: Trigger: dump

positions: line
events: Ir
summary: 788684198


ob=(8) /usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30
fn=(1766) operator new(unsigned long)
0 343280
`;

describe('callgrind dumps', () => {
  it('reads the instructions a dump counted from its summary line, or its totals line when it has one', () => {
    assert.equal(callgrindTotal(DUMP), 788_684_198);
    assert.equal(callgrindTotal(`${DUMP}\ntotals: 788684199\n`), 788_684_199);
  });

  it('refuses a file that is not a dump rather than reading 0', () => {
    assert.throws(() => callgrindTotal('pid: 1\nevents: Ir\n'), /no totals or summary|without a totals or summary/);
  });

  it('finds the per-thread files of one dump of one process, thread 1 being the main thread', () => {
    const names = ['cg.4242.1-01', 'cg.4242.1-02', 'cg.4242.1-11', 'cg.4242-01', 'cg.4242.2-01', 'cg.17.1-01', 'cg.4242.1-01.bak'];
    assert.deepEqual(dumpFiles(names, 4242, 1), [
      { name: 'cg.4242.1-01', thread: 1 },
      { name: 'cg.4242.1-02', thread: 2 },
      { name: 'cg.4242.1-11', thread: 11 },
    ]);
    assert.deepEqual(dumpFiles(names, 4242, 3), []);
  });
});
