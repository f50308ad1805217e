// Shared helpers for benchmark scripts: building bench guests, timing, medians, tables.
import { execFileSync } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const OUT = resolve(BENCH_DIR, '../build/bench');

/** Compiles bench/guests/<file> (C or assembly) statically, when the source is newer than the output. */
export function buildBenchGuest(file: string, flags: string[] = []): string {
  const src = join(BENCH_DIR, 'guests', file);
  const out = join(OUT, file.replace(/\.[cS]$/, ''));
  mkdirSync(OUT, { recursive: true });
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    const base = file.endsWith('.S') ? ['-nostdlib', '-static'] : ['-static', '-O2'];
    execFileSync('gcc', [...base, ...flags, '-o', out, src], { stdio: 'inherit' });
  }
  return out;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

/** The lower and upper quartiles of `xs`. */
export function quartiles(xs: number[]): [number, number] {
  const s = [...xs].sort((a, b) => a - b);
  return [s[Math.floor((s.length - 1) / 4)]!, s[Math.ceil(((s.length - 1) * 3) / 4)]!];
}

/** A 16 MiB region `touchCacheLines` writes into, and its generator's state. */
const OTHER_WORK = new Int32Array((16 * 1024 * 1024) / 4);
let otherWorkSeed = 1;

/**
 * Writes `lines` random cache lines of a 16 MiB region: what a request's other work does to the
 * caches, in the loops that time a piece of a request on its own (so that piece's memory is not
 * all in the cache each time, as it is not in a server).
 */
export function touchCacheLines(lines: number): void {
  for (let k = 0; k < lines; k++) {
    otherWorkSeed = (otherWorkSeed * 1103515245 + 12345) & 0x7fffffff;
    const j = otherWorkSeed & (OTHER_WORK.length - 1) & ~15;
    OTHER_WORK[j] = OTHER_WORK[j]! + 1;
  }
}

/** One line describing the machine, for the header of every benchmark table. */
export function machineLine(): string {
  const c = cpus();
  return `${c[0]?.model ?? 'unknown CPU'}, ${c.length} cores, Node ${process.version}`;
}

export function printTable(headers: string[], rows: Array<Array<string | number>>): void {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: Array<string | number>) => r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ');
  console.log(line(cells[0]!));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of cells.slice(1)) console.log(line(r));
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}
