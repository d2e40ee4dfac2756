/** Reading what callgrind wrote (bench/instructions.ts). */

/** The instructions a callgrind dump counted: its `totals:` line, else its `summary:` line. */
export function callgrindTotal(dump: string): number {
  const match = /^totals:\s+(\d+)/m.exec(dump) ?? /^summary:\s+(\d+)/m.exec(dump);
  if (match === null) throw new Error('callgrind dump without a totals or summary line');
  return Number(match[1]);
}

/**
 * The dumps of one `callgrind_control -d`, by thread: with `--separate-threads=yes` callgrind
 * names them `<prefix>.<pid>.<dump>-<thread>`, thread 01 being the main thread.
 */
export function dumpFiles(names: readonly string[], pid: number, dump: number): Array<{ name: string; thread: number }> {
  const pattern = new RegExp(`\\.${pid}\\.${dump}-(\\d+)$`);
  return names.flatMap((name) => {
    const m = pattern.exec(name);
    return m === null ? [] : [{ name, thread: Number(m[1]) }];
  });
}
