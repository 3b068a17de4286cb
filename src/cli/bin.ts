#!/usr/bin/env node
/**
 * The `negcache` executable: runs the command line (main.ts) in a child Node
 * with a larger young generation (--max-semi-space-size=64, in MB).
 *
 * Why: a training step allocates ~13 MB of short-lived typed arrays (row
 * blocks, their cotangents); with V8's default young generation they outlive
 * a scavenge, and the external-memory pressure then forces a full collection
 * every few steps (measured on the WordNet cache recipe: 336 full collections
 * in 800 steps, mean step 28.5 ms; with the flag 40 and 20.7 ms). V8 reads
 * the flag only when the heap is set up, so it cannot be set from inside a
 * running process; hence the child. Results are bit-identical either way.
 *
 * The child inherits stdio, environment and working directory; SIGINT,
 * SIGTERM and SIGHUP are passed on, and the launcher exits with the child's
 * status (or re-raises its signal). `node dist/src/cli/main.js ...` runs the
 * command line directly, without the flag (the tests do); so does this file
 * when the flag is already given (in execArgv or NODE_OPTIONS).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FLAG = '--max-semi-space-size';
const main = fileURLToPath(new URL('./main.js', import.meta.url));
const given = [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)].some((a) =>
  a.startsWith(FLAG),
);
// The handlers go in BEFORE the child exists: a signal that reached the launcher after the spawn but before the
// handlers were installed took the default action, killing the launcher alone and leaving the child training
// (test/cli/bin.test.ts). Handlers run from the event loop, after this synchronous code, so `child` is set by then.
const forward = (signal: NodeJS.Signals): void => {
  child.kill(signal);
};
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, forward);
const child = spawn(
  process.execPath,
  [...process.execArgv, ...(given ? [] : [`${FLAG}=64`]), main, ...process.argv.slice(2)],
  { stdio: 'inherit' },
);
child.on('error', (e) => {
  process.stderr.write(`negcache: could not start ${process.execPath}: ${e.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(s, forward);
  if (signal !== null) process.kill(process.pid, signal);
  else process.exit(code ?? 1);
});
