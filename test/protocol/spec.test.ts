/**
 * protocol/SPEC.md stays in step with the code: every `[PROTO §N]` citation
 * names a real section, and the op table, frame fields, queue options and their
 * defaults, error codes and worked example match.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { encodeFrames, ErrorCodes, HeaderSchemas, Op, QueueOptionsSchema, type FrameType } from '../../protocol/index.js';
import { DEFAULT_QUEUE_OPTIONS } from '../../server/engine/queue-options.js';

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

/** The text of one heading's section: from the heading line to the next heading of any level. */
function sectionAt(heading: RegExp): string | undefined {
  const lines = spec.split('\n');
  const start = lines.findIndex((line) => heading.test(line));
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < lines.length && !/^#{2,4} /.test(lines[end]!)) end++;
  return lines.slice(start, end).join('\n');
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Field names of a TypeBox object schema. */
function fieldsOf(schema: unknown): string[] {
  return Object.keys((schema as { properties?: Record<string, unknown> }).properties ?? {});
}

/** How the §5.1 options table writes a default: `1,800,000`, `none`, `` `reject-publish` ``. */
function formatDefault(value: unknown): string {
  if (value === null) return 'none';
  if (typeof value === 'number') return value.toLocaleString('en-US');
  return `\`${String(value)}\``;
}

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
    const operations = ['5.1', '5.2', '5.3', '5.4', '5.5', '5.6', '5.7', '5.8', '5.9', '5.10', '5.11', '5.12', '5.13', '5.14', '5.15', '5.16', '5.17'];
    for (const n of ['1', '2', '2.3', '2.4', '3', '3.1', '3.2', '3.3', '4', '4.1', '4.2', '4.3', '4.4', '4.5', '5', ...operations, '6', '7', '8', '9']) {
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

  it('names every header field of every frame type in that frame\'s §3.3 table', () => {
    const missing: string[] = [];
    for (const [type, op] of Object.entries(Op) as Array<[FrameType, number]>) {
      const section = sectionAt(new RegExp(`^#### .*\\b${escape(type)} \\(${op}\\)`));
      if (section === undefined) {
        missing.push(`${type}: no "#### ${type} (${op})" heading`);
        continue;
      }
      for (const field of fieldsOf(HeaderSchemas[type])) {
        if (!section.includes(`| \`${field}\` |`)) missing.push(`${type}.${field}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it('documents every queue option in the queue.declare table and in §5.1 with its default', () => {
    const declare = sectionAt(/^#### queue\.declare \(10\)/) ?? '';
    const declareSection = sectionAt(/^### §5\.1 /) ?? '';
    const options = fieldsOf(QueueOptionsSchema);
    assert.deepEqual(options.slice().sort(), Object.keys(DEFAULT_QUEUE_OPTIONS).sort(), 'schema and defaults name the same options');
    for (const option of options) {
      assert.ok(declare.includes(`| \`options.${option}\` |`), `§3.3 queue.declare lists options.${option}`);
      const expected = formatDefault(DEFAULT_QUEUE_OPTIONS[option as keyof typeof DEFAULT_QUEUE_OPTIONS]);
      const row = new RegExp(`^\\| \`${option}\` \\| ${escape(expected)}( \\(| \\|)`, 'm');
      assert.match(declareSection, row, `§5.1 gives ${option} the default ${expected}`);
    }
  });

  it('lists the queue options in §5.1 in the order the mismatch check uses', () => {
    const declareSection = sectionAt(/^### §5\.1 /) ?? '';
    const documented = [...declareSection.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]!);
    assert.deepEqual(documented, Object.keys(DEFAULT_QUEUE_OPTIONS));
  });

  it('mentions every registered error code', () => {
    for (const code of Object.keys(ErrorCodes)) assert.ok(spec.includes(`\`${code}\``), code);
  });

  it('shows the bytes the encoder produces in the worked publish example', () => {
    const encoded = encodeFrames([{ type: 'publish', seq: 1, queue: 'jobs', body: new TextEncoder().encode('hi') }]);
    assert.ok(spec.includes(Buffer.from(encoded).toString('hex')), 'the 35-byte hex string is in §2.4');
  });
});
