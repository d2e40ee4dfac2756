/**
 * protocol/SPEC.md stays in step with the code: every `[PROTO §N]` citation
 * names a real section, and the op table, error codes and worked example match.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { encodeFrames, ErrorCodes, Op } from '../../protocol/index.js';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'protocol', 'SPEC.md')) || !existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('protocol/SPEC.md not found above the test file');
    dir = parent;
  }
  return dir;
}

const root = repoRoot();
const spec = readFileSync(join(root, 'protocol', 'SPEC.md'), 'utf8');

/** Section numbers of the spec's headings: `## §5 …` → `5`, `### §5.4 …` → `5.4`. */
const sections = new Set([...spec.matchAll(/^#{2,4} §(\d+(?:\.\d+)*)\b/gm)].map((m) => m[1]!));

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

describe('protocol/SPEC.md', () => {
  it('numbers the sections the code relies on', () => {
    for (const n of ['1', '2', '2.3', '2.4', '3', '3.1', '4', '4.1', '4.2', '4.3', '5.1', '5.2', '5.3', '5.4', '5.5', '5.6', '5.7', '6', '7', '8']) {
      assert.ok(sections.has(n), `§${n} is missing`);
    }
  });

  it('has a section for every [PROTO §N] citation in the code', () => {
    const missing: string[] = [];
    let citations = 0;
    for (const folder of ['protocol', 'storage', 'server', 'clients']) {
      for (const file of sourceFiles(join(root, folder))) {
        for (const m of readFileSync(file, 'utf8').matchAll(/\[PROTO §(\d+(?:\.\d+)*)\]/g)) {
          citations++;
          if (!sections.has(m[1]!)) missing.push(`${relative(root, file)} cites §${m[1]}`);
        }
      }
    }
    assert.ok(citations > 0, 'the code cites the spec');
    assert.deepEqual(missing, []);
  });

  it('lists every op code with its number in the op table', () => {
    for (const [type, op] of Object.entries(Op)) {
      const row = new RegExp(`^\\| 0x${op.toString(16).padStart(2, '0')} \\| ${op} \\| \`${type.replace('.', '\\.')}\` \\|`, 'm');
      assert.match(spec, row, `${type} = ${op}`);
    }
  });

  it('mentions every registered error code', () => {
    for (const code of Object.keys(ErrorCodes)) assert.ok(spec.includes(`\`${code}\``), code);
  });

  it('shows the bytes the encoder produces in the worked publish example', () => {
    const encoded = encodeFrames([{ type: 'publish', seq: 1, queue: 'jobs', body: new TextEncoder().encode('hi') }]);
    assert.ok(spec.includes(Buffer.from(encoded).toString('hex')), 'the 35-byte hex string is in §2.4');
  });
});
