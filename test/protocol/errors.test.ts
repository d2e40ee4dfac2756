/**
 * The error registry of protocol/errors.ts: codes are wire contract, so each one
 * is stable, unique, and documented in docs/errors.md.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BrokerError, ErrorCodes, isErrorCode, type ErrorCode } from '../../protocol/index.js';

/** The repository root: the nearest folder above this file with docs/errors.md (works from test/ and dist/test/). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'docs', 'errors.md')) || !existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('docs/errors.md not found above the test file');
    dir = parent;
  }
  return dir;
}

const entries = Object.entries(ErrorCodes) as Array<[ErrorCode, (typeof ErrorCodes)[ErrorCode]]>;

/** Rows of the docs table: `| \`CODE\` | meaning | yes/no | … |`. */
function documentedRows(): Map<string, string[]> {
  const markdown = readFileSync(join(repoRoot(), 'docs', 'errors.md'), 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of markdown.split('\n')) {
    const match = /^\|\s*`(E_[A-Z0-9_]+)`\s*\|(.*)\|\s*$/.exec(line);
    if (match === null) continue;
    rows.set(match[1]!, match[2]!.split('|').map((cell) => cell.trim()));
  }
  return rows;
}

describe('ErrorCodes registry', () => {
  it('has every key equal to its code', () => {
    for (const [key, entry] of entries) assert.equal(entry.code, key);
  });

  it('has unique codes', () => {
    const codes = entries.map(([, entry]) => entry.code);
    assert.equal(new Set(codes).size, codes.length);
  });

  it('names every code E_ plus upper snake case', () => {
    for (const [key] of entries) assert.match(key, /^E_[A-Z]+(_[A-Z]+)*$/);
  });

  it('gives every code a non-empty message and a boolean retryable', () => {
    for (const [key, entry] of entries) {
      assert.equal(typeof entry.message, 'string', key);
      assert.ok(entry.message.length > 0, key);
      assert.equal(typeof entry.retryable, 'boolean', key);
    }
  });

  it('recognises registered codes and nothing else with isErrorCode', () => {
    for (const [key] of entries) assert.equal(isErrorCode(key), true, key);
    for (const other of ['E_NOPE', 'e_internal', '', 'toString', '__proto__', 42, null, undefined]) {
      assert.equal(isErrorCode(other), false, String(other));
    }
  });
});

describe('docs/errors.md', () => {
  const rows = documentedRows();

  it('lists every registered code in its table', () => {
    const missing = entries.map(([key]) => key).filter((key) => !rows.has(key));
    assert.deepEqual(missing, [], `codes missing from docs/errors.md: ${missing.join(', ')}`);
  });

  it('lists no code that is not registered', () => {
    const extra = [...rows.keys()].filter((code) => !isErrorCode(code));
    assert.deepEqual(extra, []);
  });

  it('states the same retryable flag as the registry', () => {
    for (const [key, entry] of entries) {
      const cells = rows.get(key);
      assert.ok(cells !== undefined, key);
      // Columns after the code: meaning | retryable | when it is sent | where
      assert.equal(cells[1], entry.retryable ? 'yes' : 'no', key);
    }
  });

  it('fills in the meaning and when each code is sent', () => {
    for (const [key, cells] of rows) {
      assert.ok(cells.length >= 4, key);
      assert.ok(cells[0]!.length > 0 && cells[2]!.length > 0 && cells[3]!.length > 0, key);
    }
  });
});

describe('BrokerError', () => {
  it('keeps code, retryable and name, and defaults the message to the registry text', () => {
    const err = new BrokerError('E_QUEUE_NOT_FOUND');
    assert.ok(err instanceof Error);
    assert.ok(err instanceof BrokerError);
    assert.equal(err.name, 'BrokerError');
    assert.equal(err.code, 'E_QUEUE_NOT_FOUND');
    assert.equal(err.retryable, false);
    assert.equal(err.message, ErrorCodes.E_QUEUE_NOT_FOUND.message);
    assert.equal(err.retryAfterMs, undefined);
    assert.match(String(err), /^BrokerError: queue does not exist$/);
  });

  it('takes retryable from the registry for every code', () => {
    for (const [key, entry] of entries) assert.equal(new BrokerError(key).retryable, entry.retryable, key);
  });

  it('uses a given message and chains the cause', () => {
    const cause = new Error('disk full');
    const err = new BrokerError('E_STORE_FAILED', 'the store could not commit: disk full', { cause });
    assert.equal(err.message, 'the store could not commit: disk full');
    assert.equal(err.cause, cause);
    assert.equal(err.retryable, true);
  });

  it('carries retryAfterMs when given', () => {
    const err = new BrokerError('E_SHUTTING_DOWN', undefined, { retryAfterMs: 250 });
    assert.equal(err.retryAfterMs, 250);
    assert.equal(err.message, ErrorCodes.E_SHUTTING_DOWN.message);
  });
});
