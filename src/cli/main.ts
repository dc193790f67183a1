#!/usr/bin/env node
// The `turtles` executable: runs the program on the process arguments and sets the exit code.
// Must not: do anything else (src/cli/program.ts is the program, and tests call it in-process).
import { run } from './program.js';

run(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
