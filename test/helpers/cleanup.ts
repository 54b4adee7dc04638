type Teardown = { teardown(fn: () => unknown): void };

const atExit: Array<() => void> = [];
const last: Array<() => void> = [];
let hooked = false;

/**
 * One 'exit' listener runs every pending cleanup and only then what `afterCleanups`
 * registered (the test slot's release): a slot freed before this process's bridge and
 * namespaces are gone could be taken by the next test file, whose fresh bridge of the
 * same name this process would then delete.
 */
function hook(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const fn of atExit.splice(0)) {
      try {
        fn();
      } catch {
        // exiting anyway: the rest must still run
      }
    }
    for (const fn of last.splice(0)) fn();
  });
}

/**
 * Runs `fn` once: in the test's teardown or, failing that, when the test process exits
 * (a failing top-level await ends the process before tap's teardown runs). `fn` must be
 * synchronous.
 */
export function onCleanup(t: Teardown, fn: () => void): void {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    fn();
  };
  hook();
  atExit.push(once);
  t.teardown(once);
}

/** Runs `fn` at process exit after every `onCleanup` function. */
export function afterCleanups(fn: () => void): void {
  hook();
  last.push(fn);
}
