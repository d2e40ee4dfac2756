/**
 * Type-level tests of the task API: this file only has to compile (`npm test` builds it with
 * tsc first). Each `@ts-expect-error` line must be a type error, or the build fails.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createApp, type AsyncResult, type TaskContext } from '../../clients/index.js';

const app = createApp({ broker: 'ws://127.0.0.1:1' });
const add = app.task('types.add', async (a: number, b: number) => a + b);
const greet = app.task('types.greet', function (this: TaskContext, name: string) {
  return `${name} (try ${this.retries + 1})`;
});

export async function typeChecks(): Promise<void> {
  const sum: AsyncResult<number> = await add.delay(1, 2);
  const value: number = await sum.get();
  // @ts-expect-error delay takes the function's parameter types
  await add.delay('1', 2);
  // @ts-expect-error and all of them
  await add.delay(1);
  // @ts-expect-error get() resolves to the return type
  const wrong: string = await sum.get();
  const text: string = await (await greet.applyAsync(['ada'], { countdownMs: 10 })).get();
  // @ts-expect-error applyAsync takes the arguments as a tuple
  await greet.applyAsync('ada');
  void [value, wrong, text];
}

it('types the task API by the task function (checked at build time)', async () => {
  // Running the function here would need a broker: the point is that this file compiled.
  assert.equal(typeof typeChecks, 'function');
  assert.equal(await add.call(2, 3), 5);
  assert.equal(await greet.call('ada'), 'ada (try 1)');
  await app.close();
});
