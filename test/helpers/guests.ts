// Builds the C guest programs under test/guests/ into build/guests/<variant>/, once per source
// change: the output is reused while the hash of source, compiler and flags is unchanged.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type GuestVariant = 'glibc' | 'pie' | 'musl';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCES = join(ROOT, 'test/guests');

const COMPILERS: Record<GuestVariant, { cc: string; flags: string[] }> = {
  glibc: { cc: 'gcc', flags: ['-static', '-O2'] },
  pie: { cc: 'gcc', flags: ['-static-pie', '-fPIE', '-O2'] },
  musl: { cc: 'musl-gcc', flags: ['-static', '-O2'] },
};

/** Compiles test/guests/<name>.c for `variant` (plus `extraFlags`) and returns the executable's path. */
export function buildGuest(name: string, variant: GuestVariant = 'glibc', extraFlags: string[] = []): string {
  const source = join(SOURCES, `${name}.c`);
  const { cc, flags } = COMPILERS[variant];
  const args = [...flags, ...extraFlags, '-o'];
  const outDir = join(ROOT, 'build/guests', variant);
  const out = join(outDir, name);
  const stamp = `${out}.hash`;
  const hash = createHash('sha256').update(readFileSync(source)).update(cc).update(args.join(' ')).digest('hex');
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return out;
  mkdirSync(outDir, { recursive: true });
  execFileSync(cc, [...args, out, source, '-I', join(ROOT, 'guest/include')], { stdio: ['ignore', 'inherit', 'inherit'] });
  writeFileSync(stamp, hash);
  return out;
}

/** True when the compiler for `variant` is installed (musl-gcc comes from Debian's musl-tools). */
export function hasCompiler(variant: GuestVariant): boolean {
  try {
    execFileSync('which', [COMPILERS[variant].cc], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
