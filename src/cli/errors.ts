// The CLI's error type: every bad-input condition becomes one line naming the file, the place and what was
// expected, with exit code 2. Engine modules return their own error values; the CLI maps them here.
// Must not: print stack traces unless --debug was given.

export class UsageError extends Error {
  readonly kind = 'usage';
}

/** Bad input: a file that cannot be read, parsed or understood. `where` is "file:line", "file@offset" or "file#event". */
export class InputError extends Error {
  readonly kind = 'input';
  constructor(readonly where: string, readonly expected: string) {
    super(`${where}: ${expected}`);
  }
}

export const ExitCode = { OK: 0, DIVERGENCE: 1, BAD_INPUT: 2 } as const;
