type Teardown = { teardown(fn: () => unknown): void };

/**
 * Runs `fn` in the test's teardown and, failing that, when the test process exits: a
 * failing top-level await ends the process before tap's teardown runs. `fn` must be
 * synchronous and safe to run twice.
 */
export function onCleanup(t: Teardown, fn: () => void): void {
  t.teardown(fn);
  process.once('exit', fn);
}
