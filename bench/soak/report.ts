// The soak's verdict (bench/soak.ts): each request classified against the origin's trouble and the
// objects the cache held within grace, the criteria of issue 15 checked, and the tables printed.
import { GRACE_S } from './config.ts';
import { type FaultWindow, OBJECT_TTL_S } from './origin.ts';
import type { Outcome } from './traffic.ts';

/** Margin kept from the end of an object's grace before a failure on it counts (clock and fetch time). */
const GRACE_MARGIN_MS = 2_000;

export type Verdict = 'ok' | 'expected 5xx' | 'unexpected 5xx' | 'failed';

export interface Sample {
  readonly at: number;
  readonly rssKiB: number;
  readonly fds: number;
}

/** What one admin action did: an upload or a reload. */
export interface AdminAction {
  readonly what: string;
  readonly at: number;
  readonly ms: number;
  readonly problem?: string;
}

export interface SoakFacts {
  readonly outcomes: readonly Outcome[];
  readonly windows: readonly FaultWindow[];
  /** How long after a fault window ends a request may still feel it (slow answers, health checks). */
  readonly faultSlackMs: number;
  readonly counts: readonly number[];
  readonly finalCount: number | null;
  readonly uploads: readonly AdminAction[];
  readonly reloads: readonly AdminAction[];
  readonly originProblems: readonly string[];
  readonly samples: readonly Sample[];
  readonly warmupEnd: number;
  readonly loadEnd: number;
  /** Open fds (their kinds, fdKinds in run.ts) with no load and no connections: after warm-up, and at the end. */
  readonly quietFds: readonly [readonly string[], readonly string[]];
  readonly exitCode: number | null;
  /** Largest RSS growth after warm-up that passes (a fraction: 0.1 is 10 %). */
  readonly rssGrowthLimit: number;
}

export interface Criterion {
  readonly name: string;
  readonly value: string;
  readonly limit: string;
  readonly pass: boolean;
}

export interface SoakReport {
  readonly criteria: readonly Criterion[];
  readonly kinds: ReadonlyArray<{ kind: string; n: number; ok: number; expected5xx: number; unexpected5xx: number; failed: number }>;
  /** The first few requests of each bad verdict, for the operator to read. */
  readonly examples: readonly string[];
  readonly pass: boolean;
}

/** True when the object was in the cache within grace when the request started. */
export function withinGrace(o: Outcome): boolean {
  const served = o.object?.servedAt;
  return served !== undefined && o.start < served + (OBJECT_TTL_S + GRACE_S) * 1000 - GRACE_MARGIN_MS;
}

function inTrouble(o: Outcome, windows: readonly FaultWindow[], slackMs: number): boolean {
  return windows.some((w) => o.start <= w.end + slackMs && o.end >= w.start);
}

export function classify(o: Outcome, windows: readonly FaultWindow[], slackMs: number): Verdict {
  if (o.status === null || o.problem !== undefined) return 'failed';
  if (o.status < 500) return 'ok';
  if (o.faultMay5xx && !withinGrace(o) && inTrouble(o, windows, slackMs)) return 'expected 5xx';
  return 'unexpected 5xx';
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/**
 * RSS at the end of warm-up and at the end of the load, both under load: the medians of the last
 * tenth of the measured stretch (at least 5 samples) and of as many samples up to `from`. (The
 * idle look at the fds right after warm-up lets the server give memory back for a while: a
 * baseline taken after it would be low.)
 */
export function rssGrowth(samples: readonly Sample[], from: number, to: number): { before: number; after: number; growth: number } {
  const measured = samples.filter((s) => s.at >= from && s.at <= to);
  const n = Math.max(5, Math.floor(measured.length / 10));
  const before = median(samples.filter((s) => s.at <= from).slice(-n).map((s) => s.rssKiB));
  const after = median(measured.slice(-n).map((s) => s.rssKiB));
  return { before, after, growth: after / before - 1 };
}

/** Repeated values among the increments' answers: each one is a lost update or a store that forgot. */
export function repeatedCounts(counts: readonly number[]): number {
  return counts.length - new Set(counts).size;
}

/**
 * The fds of one idle VM shell (src/vmm/memory/shell.ts): closed instances give theirs to a pool
 * of at most 16 per memory size and thread, which fills as uploads and reloads retire instances.
 */
const KVM_SHELL_FDS = ['anon_inode:kvm-vm', 'anon_inode:kvm-vcpu:0'];
/** The most shells the pools of the soak's two shard threads hold (one memory size: 64 MiB). */
const SHELL_POOL_BOUND = 16 * 2;

/**
 * A connection to the origin (run.ts tells them apart by port). The soak drops the origin's
 * connections before it looks, but gamma's health check (every second, from each shard) and a
 * background refresh may open new ones while it looks: up to two per shard are not a leak.
 */
export const ORIGIN_SOCKET = 'socket to the origin';
const ORIGIN_SOCKET_BOUND = 2 * 2;

/** Each kind `after` holds more of than `before`, with how many more. */
function countDiff(after: readonly string[], before: readonly string[]): Array<{ kind: string; more: number }> {
  const n = new Map<string, number>();
  for (const k of after) n.set(k, (n.get(k) ?? 0) + 1);
  for (const k of before) n.set(k, (n.get(k) ?? 0) - 1);
  return [...n].filter(([, d]) => d > 0).map(([kind, more]) => ({ kind, more }));
}

export function judge(f: SoakFacts): SoakReport {
  const kinds = new Map<string, { kind: string; n: number; ok: number; expected5xx: number; unexpected5xx: number; failed: number }>();
  const examples: string[] = [];
  const shown = new Map<Verdict, number>();
  let covered = 0;
  let coveredBad = 0;
  let unexpected = 0;
  let expected = 0;
  let failed = 0;
  for (const o of f.outcomes) {
    const v = classify(o, f.windows, f.faultSlackMs);
    const row = kinds.get(o.kind) ?? { kind: o.kind, n: 0, ok: 0, expected5xx: 0, unexpected5xx: 0, failed: 0 };
    kinds.set(o.kind, row);
    row.n++;
    const isCovered = withinGrace(o);
    if (isCovered) covered++;
    if (v === 'ok') row.ok++;
    else if (v === 'expected 5xx') {
      row.expected5xx++;
      expected++;
    } else {
      if (v === 'failed') {
        row.failed++;
        failed++;
      } else {
        row.unexpected5xx++;
        unexpected++;
      }
      if (isCovered) coveredBad++;
      const seen = shown.get(v) ?? 0;
      shown.set(v, seen + 1);
      if (seen < 8) examples.push(`${v}: ${o.kind} ${o.url} at +${o.start - f.outcomes[0]!.start} ms: ${o.status ?? 'no answer'} ${o.problem ?? ''}`.trim());
    }
  }
  const repeats = repeatedCounts(f.counts);
  const maxCount = f.counts.reduce((m, c) => Math.max(m, c), 0);
  const rss = rssGrowth(f.samples, f.warmupEnd, f.loadEnd);
  const badUploads = f.uploads.filter((u) => u.problem !== undefined);
  const badReloads = f.reloads.filter((u) => u.problem !== undefined);
  for (const a of [...badUploads, ...badReloads].slice(0, 8)) examples.push(`${a.what}: ${a.problem}`);
  for (const p of f.originProblems.slice(0, 8)) examples.push(`origin: ${p}`);
  const fdsUnderLoad = f.samples.filter((s) => s.at >= f.warmupEnd && s.at <= f.loadEnd).map((s) => s.fds);
  const [fdsBefore, fdsAfter] = f.quietFds;
  const grown = countDiff(fdsAfter, fdsBefore);
  const vmsGrown = grown.find((g) => g.kind === 'anon_inode:kvm-vm')?.more ?? 0;
  const fdsLeaked = grown.filter((g) => (g.kind === ORIGIN_SOCKET ? g.more > ORIGIN_SOCKET_BOUND : !KVM_SHELL_FDS.includes(g.kind) || vmsGrown > SHELL_POOL_BOUND));
  if (grown.length > 0) examples.push(`fds gained between the idle looks: ${grown.map((g) => `${g.kind} +${g.more}`).join(', ')}`);
  const mib = (kib: number): string => (kib / 1024).toFixed(1);
  const criteria: Criterion[] = [
    { name: 'requests (answered within grace)', value: `${f.outcomes.length} (${covered})`, limit: '', pass: f.outcomes.length > 0 },
    { name: 'failed requests for keys cached within grace', value: String(coveredBad), limit: '0', pass: coveredBad === 0 },
    { name: 'unexpected 5xx', value: String(unexpected), limit: '0', pass: unexpected === 0 },
    { name: 'wrong or missing answers (any key)', value: String(failed), limit: '0', pass: failed === 0 },
    { name: 'expected 5xx (miss or sub-request, origin in trouble)', value: String(expected), limit: '', pass: true },
    { name: 'origin fault windows', value: String(f.windows.length), limit: '≥ 4', pass: f.windows.length >= 4 },
    { name: 'kv increments repeated (lost updates)', value: `${repeats} of ${f.counts.length}`, limit: '0', pass: repeats === 0 && f.counts.length > 0 && (f.finalCount ?? 0) > maxCount },
    { name: 'hook marks missing at the origin', value: String(f.originProblems.length), limit: '0', pass: f.originProblems.length === 0 },
    { name: 'live uploads (admin API) applied', value: `${f.uploads.length - badUploads.length} of ${f.uploads.length}`, limit: 'all, ≥ 1', pass: f.uploads.length > 0 && badUploads.length === 0 },
    { name: 'reloads (admin API and SIGHUP) applied', value: `${f.reloads.length - badReloads.length} of ${f.reloads.length}`, limit: 'all, ≥ 1', pass: f.reloads.length > 0 && badReloads.length === 0 },
    { name: 'RSS after warm-up → end (MiB)', value: `${mib(rss.before)} → ${mib(rss.after)} (${(rss.growth * 100).toFixed(1)} %)`, limit: `≤ +${Math.round(f.rssGrowthLimit * 100)} %`, pass: rss.growth <= f.rssGrowthLimit },
    { name: 'open fds, idle, after warm-up → end', value: `${fdsBefore.length} → ${fdsAfter.length} (under load ${Math.min(...fdsUnderLoad)}–${Math.max(...fdsUnderLoad)})`, limit: `no growth but ≤ ${SHELL_POOL_BOUND} pooled VM shells, ≤ ${ORIGIN_SOCKET_BOUND} origin connections`, pass: fdsLeaked.length === 0 },
    { name: 'server exit on SIGTERM', value: String(f.exitCode), limit: '0', pass: f.exitCode === 0 },
  ];
  return { criteria, kinds: [...kinds.values()], examples, pass: criteria.every((c) => c.pass) };
}
