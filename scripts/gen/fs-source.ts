// Reads schema files from a repository root for the generator (the only file-system access it needs).
// Must not: write anything.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SchemaSource } from './tables.js';

export function fsSchemaSource(root: string): SchemaSource {
  return {
    readJson: (rel) => JSON.parse(readFileSync(join(root, rel), 'utf8')) as unknown,
    listDir: (rel) => readdirSync(join(root, rel)),
  };
}
