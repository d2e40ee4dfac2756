/**
 * README "Tasks in 5 minutes" runs as written: its files are written out unchanged, its worker
 * command line is run (with `berth` being this checkout's CLI), and `node send.mjs` must print
 * what the README says it prints.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startTestServer, waitFor } from '../helpers/server.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/bin/berth.js');

function readmeSection(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('## Tasks in 5 minutes');
  assert.ok(start >= 0, 'README has a "Tasks in 5 minutes" section');
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

function codeBlocks(section: string, lang: string): string[] {
  const blocks: string[] = [];
  const fence = new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g');
  for (const match of section.matchAll(fence)) blocks.push(match[1] as string);
  return blocks;
}

it('runs the README "Tasks in 5 minutes" example as written', async (t) => {
  const section = readmeSection();
  // The files go inside the package, so `import 'berth'` resolves to this checkout (self-reference).
  const dir = mkdtempSync(join(ROOT, '.readme-example-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = codeBlocks(section, 'js');
  assert.equal(files.length, 2, 'two files: tasks.mjs and send.mjs');
  for (const source of files) {
    const name = /^\/\/ (\S+)/.exec(source)?.[1];
    assert.ok(name !== undefined, 'each file starts with a "// <file name>" comment');
    writeFileSync(join(dir, name), source);
  }
  const commands = (codeBlocks(section, 'sh')[0] ?? '').trim().split('\n');
  const workerLine = commands.find((line) => line.includes('berth worker'));
  assert.ok(workerLine !== undefined, 'the commands start a worker');
  assert.ok(commands.some((line) => line.trim() === 'node send.mjs'), 'the commands run send.mjs');
  const expected = (codeBlocks(section, 'text')[0] ?? '').trim();

  const { url } = await startTestServer(t); // stands in for `npx berth serve &`
  const env = { ...process.env, BERTH_URL: url, BERTH_LOG_LEVEL: 'info' };
  const workerArgs = workerLine.replace(/^npx berth /, '').replace(/\s*&\s*$/, '').split(/\s+/);
  const worker = spawn(process.execPath, [CLI, ...workerArgs], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => worker.kill('SIGKILL'));
  let workerOut = '';
  worker.stdout.on('data', (d: Buffer) => (workerOut += d.toString()));
  worker.stderr.on('data', (d: Buffer) => (workerOut += d.toString()));
  await waitFor(() => workerOut.includes('worker ready'), { timeoutMs: 15_000, what: `the worker to be ready (output: ${workerOut})` });

  const send = spawn(process.execPath, ['send.mjs'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  send.stdout.on('data', (d: Buffer) => (out += d.toString()));
  send.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => send.on('exit', resolve));
  assert.equal(code, 0, `send.mjs failed: ${err}`);
  assert.equal(out.trim(), expected);

  worker.kill('SIGTERM');
  const exit = await new Promise<number | null>((resolve) => worker.on('exit', resolve));
  assert.equal(exit, 0, `the worker shuts down cleanly on SIGTERM (output: ${workerOut})`);
});
