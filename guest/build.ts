// Builds guest/examples/*.c into build/examples/ with gcc -static (`npm run build:guests`), or
// only the ones named on the command line. Rebuilds when the source or the SDK header is newer.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const GUEST = dirname(fileURLToPath(import.meta.url));
export const EXAMPLES_OUT = resolve(GUEST, '../build/examples');
const HEADER = join(GUEST, 'include/tinyedge.h');
/** Per-example compiler flags beyond the defaults. */
const EXTRA: Record<string, string[]> = { avx2: ['-mavx2', '-mfma'] };

/** Builds one example if needed and returns the executable's path. */
export function buildExample(name: string): string {
  const src = join(GUEST, 'examples', `${name}.c`);
  if (!existsSync(src)) throw new Error(`no example named ${name} (${src})`);
  const out = join(EXAMPLES_OUT, name);
  const newest = Math.max(statSync(src).mtimeMs, statSync(HEADER).mtimeMs);
  if (!existsSync(out) || statSync(out).mtimeMs < newest) {
    mkdirSync(EXAMPLES_OUT, { recursive: true });
    execFileSync('gcc', ['-static', '-O2', '-Wall', '-Wextra', ...(EXTRA[name] ?? []), '-I', join(GUEST, 'include'), '-o', out, src], { stdio: 'inherit' });
  }
  return out;
}

export function exampleNames(): string[] {
  return readdirSync(join(GUEST, 'examples')).filter((f) => f.endsWith('.c')).map((f) => basename(f, '.c')).sort();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const names = process.argv.length > 2 ? process.argv.slice(2) : exampleNames();
  for (const name of names) console.log(buildExample(name));
}
