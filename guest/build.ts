// Builds the programs of guest/examples/ (`npm run build:guests`): C (`name.c`, gcc -static), C++
// (`name.cc`, g++ -static) and Rust (`name/Cargo.toml`, cargo with a static C runtime), those
// whose toolchain is installed, or only the ones named on the command line, into build/examples/
// or the directory given with `--out` (`npm run build` puts the demo program of `serve`'s
// embedded default into dist/demo/ this way, so the package ships it prebuilt). C and C++ are
// rebuilt when the source or an SDK header is newer than the output; cargo decides for Rust.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const GUEST = dirname(fileURLToPath(import.meta.url));
const EXAMPLES_OUT = resolve(GUEST, '../build/examples');
const HEADERS = [join(GUEST, 'include/tinyedge.h'), join(GUEST, 'include/tinyedge.hpp')];
/** Per-example compiler flags beyond the defaults. */
const EXTRA: Record<string, string[]> = { avx2: ['-mavx2', '-mfma'] };
/** Where cargo builds (one directory for every crate: the SDK is compiled once). */
const CARGO_TARGET_DIR = resolve(GUEST, '../build/cargo');
/** The target of this machine's Rust standard library; with crt-static it links a static-pie. */
const RUST_TARGET = 'x86_64-unknown-linux-gnu';

/** True when `command` (g++, cargo) is on the PATH. */
export function toolchainPresent(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Builds one example into `outDir` if needed and returns the executable's path. */
export function buildExample(name: string, outDir: string = EXAMPLES_OUT): string {
  const crate = join(GUEST, 'examples', name);
  if (existsSync(join(crate, 'Cargo.toml'))) return buildCrate(crate, outDir);
  const cxx = join(GUEST, 'examples', `${name}.cc`);
  const src = existsSync(cxx) ? cxx : join(GUEST, 'examples', `${name}.c`);
  if (!existsSync(src)) throw new Error(`no example named ${name} (${src})`);
  const out = join(outDir, name);
  const newest = Math.max(statSync(src).mtimeMs, ...HEADERS.map((h) => statSync(h).mtimeMs));
  if (!existsSync(out) || statSync(out).mtimeMs < newest) {
    mkdirSync(outDir, { recursive: true });
    const compiler = src === cxx ? ['g++', '-std=c++17'] : ['gcc'];
    execFileSync(compiler[0]!, [...compiler.slice(1), '-static', '-O2', '-Wall', '-Wextra', ...(EXTRA[name] ?? []), '-I', join(GUEST, 'include'), '-o', out, src], { stdio: 'inherit' });
  }
  return out;
}

/**
 * Builds the binary crate in `dir` (whose package is named like the directory) with cargo,
 * offline (it may depend on guest/rust, nothing from a registry), statically linked, and copies
 * the executable into `outDir`; returns its path there.
 */
export function buildCrate(dir: string, outDir: string): string {
  const name = basename(dir);
  execFileSync('cargo', ['build', '--offline', '--release', '--quiet', '--target', RUST_TARGET, '--manifest-path', join(dir, 'Cargo.toml')], {
    stdio: 'inherit',
    env: { ...process.env, CARGO_TARGET_DIR, RUSTFLAGS: '-C target-feature=+crt-static' },
  });
  const out = join(outDir, name);
  mkdirSync(outDir, { recursive: true });
  copyFileSync(join(CARGO_TARGET_DIR, RUST_TARGET, 'release', name), out);
  return out;
}

/** The examples whose toolchain is installed; the others are named on stderr. */
function exampleNames(): string[] {
  const names: string[] = [];
  const has = { 'g++': toolchainPresent('g++'), cargo: toolchainPresent('cargo') };
  for (const entry of readdirSync(join(GUEST, 'examples'), { withFileTypes: true })) {
    const kind = entry.isDirectory() ? (existsSync(join(GUEST, 'examples', entry.name, 'Cargo.toml')) ? 'cargo' : undefined) : entry.name.endsWith('.cc') ? 'g++' : entry.name.endsWith('.c') ? 'gcc' : undefined;
    if (kind === undefined) continue;
    const name = entry.isDirectory() ? entry.name : entry.name.replace(/\.cc?$/, '');
    if (kind === 'gcc' || has[kind]) names.push(name);
    else process.stderr.write(`skipping ${name}: ${kind} is not installed\n`);
  }
  return names.sort();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ options: { out: { type: 'string' } }, allowPositionals: true });
  const outDir = values.out === undefined ? EXAMPLES_OUT : resolve(values.out);
  const names = positionals.length > 0 ? positionals : exampleNames();
  for (const name of names) console.log(buildExample(name, outDir));
}
