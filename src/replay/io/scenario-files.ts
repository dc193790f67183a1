// Scenario files on disk: the built-in scenarios shipped in scenarios/*.json (names = file stems) and scenario files
// given by path. This is the I/O side of src/replay/scenario (which parses text and never opens files).
// Must not: interpret scenario contents beyond calling parseScenario.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_SCENARIO_BYTES, parseScenario } from '../scenario/parse.js';
import type { Scenario } from '../scenario/types.js';
import { TraceIoError } from './trace-file.js';

/** The shipped scenarios/ directory: found by walking up from this module (src/ when run from source, dist/src/ when built). */
export function builtinScenarioDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, 'scenarios');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  throw new Error('turtles bug: the scenarios/ directory of the installation is missing');
}

/** Names of the built-in scenarios, sorted. */
export function builtinScenarios(): string[] {
  return readdirSync(builtinScenarioDir()).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
}

/** Read and parse a built-in scenario by name. */
export function loadBuiltinScenario(name: string): Scenario {
  const path = join(builtinScenarioDir(), `${name}.json`);
  return parseScenario(readFileSync(path, 'utf8'), `builtin:${name}`);
}

/**
 * A scenario by built-in name or by file path: a name of a built-in wins unless the argument looks like a path
 * (contains a slash or ends in .json) and exists.
 */
export function loadScenario(nameOrPath: string): Scenario {
  const looksLikePath = nameOrPath.includes('/') || nameOrPath.includes('\\') || nameOrPath.endsWith('.json');
  if (!looksLikePath && builtinScenarios().includes(nameOrPath)) return loadBuiltinScenario(nameOrPath);
  if (!looksLikePath && !existsSync(nameOrPath)) {
    throw new TraceIoError(nameOrPath, `a built-in scenario name (${builtinScenarios().join(', ')}) or a scenario file`);
  }
  const path = resolve(nameOrPath);
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new TraceIoError(nameOrPath, 'a readable scenario file', (e as NodeJS.ErrnoException).code);
  }
  if (size > MAX_SCENARIO_BYTES) throw new TraceIoError(nameOrPath, `a scenario file of at most ${MAX_SCENARIO_BYTES} bytes, it has ${size}`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TraceIoError(nameOrPath, 'a readable scenario file', (e as NodeJS.ErrnoException).code);
  }
  return parseScenario(text, nameOrPath);
}
