// Builds the guest programs under test/guests/ (C, or C++ for a `.cc` source) into
// build/guests/<variant>/, and Rust (`.rs`) and Go (`.go`) programs into build/guests/rust/ and
// build/guests/go/, once per source change: the output is reused while the hash of source,
// compiler and flags is unchanged.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The static variants a guest must run under, plus `dynamic` (plain `gcc`), which tinyedge refuses. */
export type GuestVariant = 'glibc' | 'pie' | 'musl' | 'dynamic';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCES = join(ROOT, 'test/guests');
const SDK_HEADERS = [join(ROOT, 'guest/include/tinyedge.h'), join(ROOT, 'guest/include/tinyedge.hpp')];

const COMPILERS: Record<GuestVariant, { cc: string; cxx?: string; flags: string[] }> = {
  glibc: { cc: 'gcc', cxx: 'g++', flags: ['-static', '-O2'] },
  pie: { cc: 'gcc', cxx: 'g++', flags: ['-static-pie', '-fPIE', '-O2'] },
  musl: { cc: 'musl-gcc', flags: ['-static', '-O2'] },
  dynamic: { cc: 'gcc', cxx: 'g++', flags: ['-O2'] },
};

/**
 * Compiles test/guests/<name>.c (or <name>.cc with g++, or the .c files of the directory
 * test/guests/<name>/ as one program) for `variant` plus `extraFlags` and returns the
 * executable's path; extra flags become part of the file name, so builds of one source with
 * different flags do not overwrite each other.
 */
export function buildGuest(name: string, variant: GuestVariant = 'glibc', extraFlags: string[] = []): string {
  const cxxSource = join(SOURCES, `${name}.cc`);
  const isCxx = existsSync(cxxSource);
  const dir = join(SOURCES, name);
  const sources = existsSync(dir) && statSync(dir).isDirectory()
    ? readdirSync(dir).filter((f) => f.endsWith('.c')).sort().map((f) => join(dir, f))
    : [isCxx ? cxxSource : join(SOURCES, `${name}.c`)];
  const { cc: cCompiler, cxx, flags } = COMPILERS[variant];
  const cc = isCxx ? cxx : cCompiler;
  if (cc === undefined) throw new Error(`no C++ compiler for the ${variant} variant (${name}.cc)`);
  const args = [...flags, ...extraFlags, '-o'];
  const outDir = join(ROOT, 'build/guests', variant);
  const suffix = extraFlags.join('').replace(/[^A-Za-z0-9]+/g, '_');
  const out = join(outDir, suffix ? `${name}${suffix}` : name);
  const stamp = `${out}.hash`;
  // The SDK headers are part of every guest that includes them.
  const hash = createHash('sha256');
  for (const file of [...sources, ...SDK_HEADERS]) hash.update(readFileSync(file));
  const digest = hash.update(cc).update(args.join(' ')).digest('hex');
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return out;
  mkdirSync(outDir, { recursive: true });
  execFileSync(cc, [...args, out, ...sources, '-I', join(ROOT, 'guest/include')], { stdio: ['ignore', 'inherit', 'inherit'] });
  writeFileSync(stamp, digest);
  return out;
}

/** How each other language's toolchain builds a static executable (`-o OUT SOURCE` follow). */
const OTHER_LANGUAGES = {
  // A static-pie with std, as `rustc -C target-feature=+crt-static` makes it.
  rust: { ext: 'rs', command: 'rustc', args: ['-C', 'target-feature=+crt-static', '-O', '--edition', '2021'], env: {} },
  // Pure Go, no libc: a static executable.
  go: { ext: 'go', command: 'go', args: ['build', '-trimpath'], env: { CGO_ENABLED: '0', GO111MODULE: 'off' } },
} as const;

/** Builds test/guests/<name>.rs with rustc or <name>.go with `go build` and returns the executable's path. */
export function buildOtherGuest(name: string, language: keyof typeof OTHER_LANGUAGES): string {
  const { ext, command, args, env } = OTHER_LANGUAGES[language];
  const source = join(SOURCES, `${name}.${ext}`);
  const outDir = join(ROOT, 'build/guests', language);
  const out = join(outDir, name);
  const stamp = `${out}.hash`;
  const version = execFileSync(command, [language === 'go' ? 'version' : '--version'], { encoding: 'utf8' });
  const digest = createHash('sha256').update(readFileSync(source)).update(version).update(args.join(' ')).digest('hex');
  if (existsSync(out) && existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return out;
  mkdirSync(outDir, { recursive: true });
  execFileSync(command, [...args, '-o', out, source], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env }, cwd: SOURCES });
  writeFileSync(stamp, digest);
  return out;
}

/** True when the toolchain for `language` is installed. */
export function hasToolchain(language: keyof typeof OTHER_LANGUAGES): boolean {
  try {
    execFileSync('which', [OTHER_LANGUAGES[language].command], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** True when the C compiler for `variant` (or, with `cxx`, its C++ compiler) is installed. */
export function hasCompiler(variant: GuestVariant, cxx = false): boolean {
  const cc = cxx ? COMPILERS[variant].cxx : COMPILERS[variant].cc;
  if (cc === undefined) return false;
  try {
    execFileSync('which', [cc], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
