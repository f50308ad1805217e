// Runs wrk (pinned to a CPU) and parses the numbers the proxy benchmark compares: requests per
// second, the 50th and 99th percentile latency, and anything that makes a run invalid.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Children } from './proxy-servers.ts';

export interface WrkResult {
  readonly requestsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Non-2xx/3xx responses plus socket errors: a run with any is not a clean measurement. */
  readonly errors: number;
  readonly raw: string;
}

export interface WrkRun {
  readonly url: string;
  readonly connections: number;
  readonly durationSec: number;
  /** `taskset -c <cpu>` prefix, or undefined to run unpinned. */
  readonly cpu?: string;
  /**
   * Each connection waits this long after a response before its next request (wrk's `delay()`
   * hook): the offered load is then about connections / (pace + latency), below what the server
   * can take, so its CPU time per request compares between runs at the same load.
   */
  readonly paceMs?: number;
}

/** wrk's arguments for a pace: a Lua script whose `delay()` returns it (written once per pace). */
function paceArgs(paceMs: number | undefined): string[] {
  if (paceMs === undefined) return [];
  const file = join(tmpdir(), `tinyedge-wrk-pace-${paceMs}ms.lua`);
  writeFileSync(file, `-- bench/wrk.ts: ${paceMs} ms between a connection's response and its next request.\nfunction delay() return ${paceMs} end\n`);
  return ['-s', file];
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

function durationMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (m === null) throw new Error(`wrk: cannot read the duration "${text}"`);
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

/** Parses wrk's `--latency` report. Throws when the numbers we need are missing. */
export function parseWrk(raw: string): WrkResult {
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(raw);
  const p50 = /^\s+50%\s+(\S+)/m.exec(raw);
  const p99 = /^\s+99%\s+(\S+)/m.exec(raw);
  if (rps === null || p50 === null || p99 === null) throw new Error(`wrk: unexpected output:\n${raw}`);
  let errors = 0;
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(raw);
  if (non2xx !== null) errors += Number(non2xx[1]);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  if (socket !== null) errors += socket.slice(1).reduce((sum, n) => sum + Number(n), 0);
  return { requestsPerSec: Number(rps[1]), p50Ms: durationMs(p50[1] as string), p99Ms: durationMs(p99[1] as string), errors, raw };
}

/** Runs one wrk load (one thread) as one of `children`, so it dies with the benchmark too. */
export function runWrk(run: WrkRun, children: Children): Promise<WrkResult> {
  return runWrkWithHeaders(run, [], children);
}

/**
 * Like runWrk, with extra request headers (`-H "Name: value"`) on every request: e.g. a request
 * `Cache-Control: no-store`, which makes a cache pass every request to its backend.
 */
export async function runWrkWithHeaders(run: WrkRun, headers: readonly string[], children: Children): Promise<WrkResult> {
  const args = ['-t1', `-c${run.connections}`, `-d${run.durationSec}s`, '--latency', ...paceArgs(run.paceMs), ...headers.flatMap((h) => ['-H', h]), run.url];
  const child = children.spawn('wrk', args, run.cpu);
  const code = await child.exited;
  if (code !== 0) throw new Error(`wrk exited with ${code}:\n${child.output()}`);
  return parseWrk(child.output());
}
