import * as assert from 'uvu/assert';

/** Fails the current test (uvu's unreachable, typed as never). */
export function fail(message: string): never {
  assert.unreachable(message);
  throw new Error(message);
}
