/**
 * The architecture of DESIGN.md, checked on the sources: which top-level folder may import which,
 * `protocol/` free of Node built-ins, and no import cycles (what `madge --circular` would report,
 * without another dependency).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FOLDERS = ['protocol', 'storage', 'server', 'clients', 'bin'] as const;
type Folder = (typeof FOLDERS)[number];

/** Which of our folders each folder may import (DESIGN.md "Layout"). */
const ALLOWED: Record<Folder, readonly Folder[]> = {
  protocol: [],
  storage: ['protocol'],
  server: ['protocol', 'storage'],
  clients: ['protocol'],
  bin: ['server', 'clients'],
};

interface Import {
  from: string;
  to: string;
  /** `import type` / `export type`: erased, so it cannot form a runtime cycle. */
  typeOnly: boolean;
  dynamic: boolean;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

function importsOf(file: string): Import[] {
  const text = readFileSync(file, 'utf8');
  const out: Import[] = [];
  const pattern = /(?:^|\n)\s*(import|export)\s+(type\s+)?[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)|(?:^|\n)\s*import\s+'([^']+)'/g;
  for (const m of text.matchAll(pattern)) {
    const spec = m[3] ?? m[4] ?? m[5];
    if (spec === undefined) continue;
    out.push({ from: file, to: spec, typeOnly: m[2] !== undefined, dynamic: m[4] !== undefined });
  }
  return out;
}

function resolveLocal(imp: Import): string | undefined {
  if (!imp.to.startsWith('.')) return undefined;
  return resolve(dirname(imp.from), imp.to).replace(/\.js$/, '.ts');
}

function folderOf(file: string): Folder | undefined {
  const top = relative(ROOT, file).split(/[\\/]/)[0];
  return FOLDERS.find((f) => f === top);
}

const files = FOLDERS.flatMap((folder) => sources(join(ROOT, folder)));
const imports = files.flatMap(importsOf);

describe('layout', () => {
  it('keeps each folder to the imports DESIGN.md allows', () => {
    const bad: string[] = [];
    for (const imp of imports) {
      const target = resolveLocal(imp);
      if (target === undefined) continue;
      const from = folderOf(imp.from) as Folder;
      const to = folderOf(target);
      if (to === undefined || to === from) continue;
      if (!ALLOWED[from].includes(to)) bad.push(`${relative(ROOT, imp.from)} imports ${imp.to}`);
    }
    assert.deepEqual(bad, []);
  });

  it('keeps protocol/ pure: no Node built-ins', () => {
    const bad = imports.filter((imp) => folderOf(imp.from) === 'protocol' && imp.to.startsWith('node:')).map((imp) => `${relative(ROOT, imp.from)}: ${imp.to}`);
    assert.deepEqual(bad, []);
  });

  it('keeps the producer side of the SDK free of Node built-ins (it runs in browsers)', () => {
    // Node-only: the worker runtime's pools and CLI, loaded on demand by the worker.
    const nodeOnly = /clients[\\/]tasks[\\/](pools[\\/]|cli\.ts)|clients[\\/]transport\.ts/;
    const bad = imports
      .filter((imp) => folderOf(imp.from) === 'clients' && !nodeOnly.test(imp.from) && imp.to.startsWith('node:') && !imp.dynamic)
      .map((imp) => `${relative(ROOT, imp.from)}: ${imp.to}`);
    assert.deepEqual(bad, []);
  });

  it('has no import cycles', () => {
    const graph = new Map<string, string[]>();
    for (const imp of imports) {
      const target = resolveLocal(imp);
      if (target === undefined || imp.typeOnly || imp.dynamic) continue;
      graph.set(imp.from, [...(graph.get(imp.from) ?? []), target]);
    }
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (node: string, path: string[]): void => {
      if (state.get(node) === 'done') return;
      if (state.get(node) === 'visiting') {
        cycles.push([...path.slice(path.indexOf(node)), node].map((f) => relative(ROOT, f)).join(' → '));
        return;
      }
      state.set(node, 'visiting');
      for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
      state.set(node, 'done');
    };
    for (const file of files) visit(file, []);
    assert.deepEqual(cycles, []);
  });
});
