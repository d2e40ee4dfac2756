import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TaskError, TaskErrorCodes } from '../../clients/index.js';

it('documents every task layer error code in docs/errors.md, and nothing else there', () => {
  const markdown = readFileSync(fileURLToPath(new URL('../../../docs/errors.md', import.meta.url)), 'utf8');
  const section = markdown.slice(markdown.indexOf('## Task layer errors'));
  const listed = [...section.matchAll(/^- `(E_[A-Z_]+)`/gm)].map((m) => m[1]);
  assert.deepEqual([...listed].sort(), Object.keys(TaskErrorCodes).sort());
  for (const [key, code] of Object.entries(TaskErrorCodes)) assert.equal(key, code);
  assert.equal(new TaskError('E_TASK_INVALID', 'x').code, 'E_TASK_INVALID');
});
