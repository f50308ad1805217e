// The HTTP fuzzer's engine: builds case N of a seeded run (a corpus request, mutated, written in
// seeded pieces with bounded pauses, then a valid follow-up request on the same connection), runs
// cases against every target in parallel, and records what breaks an invariant: a target that
// died, printed an unhandled exception, stopped answering a fresh connection, grew its RSS past a
// bound, sent a malformed or desynchronised response stream, or forwarded a request its origin's
// parser refused. bench/fuzz-http.ts runs it for a while; test/http/fuzz.test.ts on a fixed seed.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SEEDS, type SeedContext, SMUGGLED_PATH } from './corpus.ts';
import { type Framing, strictFraming } from './frame.ts';
import { type CaseOutcome, judge, type Verdict } from './judge.ts';
import { caseSeed, mutate, Rng, schedule } from './mutate.ts';
import { echoBody, type EchoOrigin, FUZZ_HOST, startEchoOrigin, startTarget, type Target, TARGET_NAMES, type TargetName } from './targets.ts';

export interface FuzzConfig {
  readonly seed: number;
  /** Parallel connections per target. */
  readonly concurrency: number;
  /** Longest pause between two writes of one case. */
  readonly maxPauseMs: number;
  /** How long to wait for the server to answer or close after the follow-up. */
  readonly deadlineMs: number;
  /** RSS growth over the baseline (taken after `warmUpCases`) that counts as unbounded. */
  readonly rssGrowthLimit: number;
  readonly warmUpCases: number;
  /** serve's `shards`. */
  readonly shards: number;
  /** The echo program (test/guests/http_echo.c, built). */
  readonly program: string;
  /** The targets to start and fuzz (cases stay numbered over all three, so a case replays alone). */
  readonly targets: readonly TargetName[];
}

export type FindingKind = 'crash' | 'exception' | 'desync' | 'malformed' | 'unresponsive' | 'memory' | 'origin';

export interface Finding {
  readonly target: TargetName;
  readonly kind: FindingKind;
  readonly problem: string;
  /** The case that showed it (for crashes and exceptions: the cases in flight), or null. */
  readonly cases: number[];
  /** The first of those cases' bytes, as a JSON string, cut to a readable length. */
  readonly request?: string;
}

export interface TargetStats {
  cases: number;
  outcomes: Record<CaseOutcome, number>;
  /** Final responses by status class ('2xx', …). */
  statuses: Record<string, number>;
  rssBaseline: number;
  rssMax: number;
  restarts: number;
}

/** One case, fully determined by (seed, index). */
export interface FuzzCase {
  readonly index: number;
  readonly target: TargetName;
  readonly seedName: string;
  readonly mutations: number;
  /** For an unmutated valid seed, what must become of the follow-up (corpus.ts, `valid`). */
  readonly expect: 'answer' | 'close' | undefined;
  readonly parts: Buffer[];
  readonly pausesMs: number[];
  readonly followUpPath: string;
  readonly followUp: Buffer;
  /** How the reference framer reads the bytes before the follow-up. */
  readonly framing: Framing;
}

const VALID_SEEDS = SEEDS.filter((s) => s.valid !== undefined);
const HOT_PATHS = ['/hot/0', '/hot/1', '/hot/2', '/hot/3', '/hot/follow'];
const PROBE_EVERY = 100;
const RSS_EVERY = 25;
const PROBE_TIMEOUT_MS = 10_000;

/** Donor bytes for splices: every seed, built once for a case that is never run. */
const DONORS: readonly Buffer[] = SEEDS.map((s) => Buffer.from(s.build({ host: FUZZ_HOST, cache: '/c/donor', program: '/p/donor', hot: '/hot/0' }).join(''), 'latin1'));

/** The follow-up of case `index`: it ends the connection, and its X-Follow field is the case's own. */
const followUpRequest = (path: string, index: number): Buffer =>
  Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${FUZZ_HOST}\r\nX-Follow: case-${index}\r\nConnection: close\r\n\r\n`, 'latin1');

/** Builds case `index` of the run seeded with `seed`; the target goes round-robin. */
export function buildCase(seed: number, index: number, maxPauseMs: number): FuzzCase {
  const target = TARGET_NAMES[index % TARGET_NAMES.length] as TargetName;
  const rng = new Rng(caseSeed(seed, index));
  // Half the cases start from a valid request: a mutation of one is likelier to get through.
  const s = rng.pick(rng.chance(0.5) ? VALID_SEEDS : SEEDS);
  // dev serves every path with its program; proxy has no program route (/p goes to its origin).
  const ctx: SeedContext = { host: FUZZ_HOST, cache: `/c/k${index}`, program: `/p/k${index}`, hot: rng.pick(HOT_PATHS.slice(0, 4)) };
  const pieces = s.build(ctx).map((p) => Buffer.from(p, 'latin1'));
  const boundaries: number[] = [];
  let offset = 0;
  for (const p of pieces) boundaries.push((offset += p.length));
  const { bytes, applied } = mutate(Buffer.concat(pieces), rng, DONORS);
  const { parts, pausesMs } = schedule(bytes, boundaries, rng, maxPauseMs);
  const kinds = target === 'serve' ? ['cache', 'hot', 'program'] : target === 'proxy' ? ['cache', 'hot'] : ['program'];
  const kind = rng.pick(kinds);
  const followUpPath = kind === 'hot' ? '/hot/follow' : kind === 'cache' ? `/c/follow-${index}` : `/p/follow-${index}`;
  const followUp = followUpRequest(followUpPath, index);
  const expect = applied === 0 ? s.valid : undefined;
  return { index, target, seedName: s.name, mutations: applied, expect, parts, pausesMs, followUpPath, followUp, framing: strictFraming(bytes) };
}

export interface Exchange {
  readonly received: Buffer;
  readonly closed: boolean;
  readonly followUpSent: boolean;
}

/** Plays one case on a new connection to `port`: the pieces, their pauses, then the follow-up. */
export function converse(port: number, c: FuzzCase, deadlineMs: number): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    let closed = false;
    let followUpSent = false;
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(received), closed, followUpSent });
    };
    const ended = (): void => {
      closed = true;
      finish();
    };
    socket.on('data', (d: Buffer) => received.push(d));
    socket.on('end', ended);
    socket.on('close', ended);
    socket.on('error', ended);
    socket.once('connect', () => {
      let i = 0;
      const next = (): void => {
        if (done || closed) return;
        if (i < c.parts.length) {
          socket.write(c.parts[i] as Buffer);
          const pause = c.pausesMs[i++] as number;
          if (pause > 0) timer = setTimeout(next, pause);
          else next();
          return;
        }
        // The server may have ended its side already: then the follow-up is not sent.
        if (socket.readableEnded || !socket.writable) return;
        followUpSent = true;
        socket.write(c.followUp);
        timer = setTimeout(finish, deadlineMs);
      };
      next();
    });
  });
}

/** Runs cases against live targets and keeps the tally. */
export class HttpFuzzer {
  readonly findings: Finding[] = [];
  readonly stats = new Map<TargetName, TargetStats>();
  private readonly targets = new Map<TargetName, Target>();
  private readonly origins = new Map<TargetName, EchoOrigin>();
  private readonly inFlight = new Map<TargetName, Set<FuzzCase>>();
  private readonly seenExceptions = new Map<TargetName, number>();
  private readonly reportedMemory = new Set<TargetName>();
  private probes = 0;

  private constructor(readonly config: FuzzConfig, private readonly workDir: string) {}

  /** Starts the origins and the three targets, and caches the hot paths. */
  static async start(config: FuzzConfig): Promise<HttpFuzzer> {
    const fuzzer = new HttpFuzzer(config, mkdtempSync(join(tmpdir(), 'tinyedge-fuzz-http-')));
    try {
      for (const name of config.targets) {
        fuzzer.stats.set(name, { cases: 0, outcomes: { answered: 0, refused: 0, dropped: 0, merged: 0, unanswered: 0 }, statuses: {}, rssBaseline: 0, rssMax: 0, restarts: 0 });
        fuzzer.inFlight.set(name, new Set());
        await fuzzer.startOne(name);
      }
    } catch (err) {
      await fuzzer.close();
      throw err;
    }
    return fuzzer;
  }

  private async startOne(name: TargetName): Promise<void> {
    let origin = this.origins.get(name);
    if (origin === undefined && name !== 'dev') {
      origin = await startEchoOrigin();
      this.origins.set(name, origin);
    }
    const target = await startTarget(name, origin?.url ?? '', this.config.program, this.workDir, this.config.shards);
    this.targets.set(name, target);
    this.seenExceptions.set(name, 0);
    // Twice: the first fetch stores, the second is the fast path's.
    for (let i = 0; i < 2; i++) for (const path of HOT_PATHS) await this.probe(target, path);
  }

  /** A fresh connection's GET of `path` must get its echo; false (and a finding) otherwise. */
  private async probe(target: Target, path: string): Promise<boolean> {
    const c: FuzzCase = { index: -1, target: target.name, seedName: 'probe', mutations: 0, expect: 'answer', parts: [], pausesMs: [], followUpPath: path,
      followUp: followUpRequest(path, -1), framing: 'boundary' };
    const ex = await converse(target.port, c, PROBE_TIMEOUT_MS);
    const v = judge({ ...ex, followUpPath: path, followUpId: 'case--1', followUpBody: echoBody(path), framing: c.framing });
    if (v.outcome === 'answered' && v.problem === null) return true;
    this.record(target.name, 'unresponsive', `a fresh connection's GET ${path} got ${v.outcome}${v.problem ? `: ${v.problem}` : ''} (statuses ${v.statuses.join(' ') || 'none'}); its last output:\n${target.tail().slice(-10).join('\n')}`, []);
    return false;
  }

  private record(target: TargetName, kind: FindingKind, problem: string, cases: FuzzCase[]): void {
    const first = cases[0];
    this.findings.push({
      target, kind, problem, cases: cases.map((c) => c.index),
      ...(first ? { request: JSON.stringify(Buffer.concat(first.parts).toString('latin1').slice(0, 600)) } : {}),
    });
  }

  /** Runs one case and checks its verdict and its target's health; returns the verdict and what the target sent. */
  async runCase(c: FuzzCase): Promise<Verdict & { received: Buffer }> {
    const target = this.targets.get(c.target) as Target;
    const stats = this.stats.get(c.target) as TargetStats;
    const flying = this.inFlight.get(c.target) as Set<FuzzCase>;
    flying.add(c);
    // A case whose end is known gets the probe's patience: only a wrong server waits it out.
    const ex = await converse(target.port, c, c.expect !== undefined || c.framing !== 'unknown' ? PROBE_TIMEOUT_MS : this.config.deadlineMs);
    const verdict = judge({ ...ex, followUpPath: c.followUpPath, followUpId: `case-${c.index}`, followUpBody: echoBody(c.followUpPath), framing: c.framing });
    stats.cases++;
    stats.outcomes[verdict.outcome]++;
    for (const s of verdict.statuses) {
      const cls = s === 0 ? 'cut' : `${String(s)[0]}xx`;
      stats.statuses[cls] = (stats.statuses[cls] ?? 0) + 1;
    }
    // Unmutated, no seed's smuggled request (corpus.ts) may ever be answered: it hides in a body, or behind a refusal.
    const smuggled = c.mutations === 0 && verdict.echoes.some((e) => e.startsWith(SMUGGLED_PATH)) ? `the request smuggled in it was answered (echoes ${verdict.echoes.join(' ')})` : null;
    const problem = verdict.problem ?? smuggled ?? (c.expect === 'answer' && verdict.outcome !== 'answered' ? `the follow-up behind this valid request was ${verdict.outcome}` :
      c.expect === 'close' && verdict.outcome !== 'refused' ? `the follow-up behind a request that ends its connection was ${verdict.outcome}` : null);
    if (problem !== null) {
      this.record(c.target, problem.startsWith('malformed') ? 'malformed' : 'desync', `${c.seedName} (${c.mutations} mutations): ${problem} (statuses ${verdict.statuses.join(' ') || 'none'})`, [c]);
    }
    await this.checkHealth(target, [...flying]);
    flying.delete(c);
    if (stats.cases % RSS_EVERY === 0) this.sampleRss(target, stats);
    if (stats.cases % PROBE_EVERY === 0) await this.probe(target, `/c/probe-${++this.probes}`);
    return { ...verdict, received: ex.received };
  }

  private async checkHealth(target: Target, suspects: FuzzCase[]): Promise<void> {
    const seen = this.seenExceptions.get(target.name) as number;
    if (target.exceptions.length > seen) {
      this.seenExceptions.set(target.name, target.exceptions.length);
      this.record(target.name, 'exception', target.exceptions.slice(seen, seen + 8).join('\n'), suspects);
    }
    const origin = this.origins.get(target.name);
    if (origin !== undefined && origin.refused.length > 0) {
      this.record(target.name, 'origin', `the origin's parser refused a forwarded request: ${origin.refused.splice(0).join('; ')}`, suspects);
    }
    const exit = target.exited();
    if (exit !== null && this.targets.get(target.name) === target) {
      this.record(target.name, 'crash', `tinyedge ${target.name} ended (${exit}); its last output:\n${target.tail().slice(-15).join('\n')}`, suspects);
      // A new one, so the run goes on; cases in flight on the dead one count as refused.
      this.targets.delete(target.name);
      (this.stats.get(target.name) as TargetStats).restarts++;
      await this.startOne(target.name);
    }
  }

  private sampleRss(target: Target, stats: TargetStats): void {
    const rss = target.rssBytes();
    if (stats.cases <= this.config.warmUpCases || stats.rssBaseline === 0) {
      stats.rssBaseline = Math.max(stats.rssBaseline, rss);
    }
    stats.rssMax = Math.max(stats.rssMax, rss);
    if (stats.rssBaseline > 0 && rss - stats.rssBaseline > this.config.rssGrowthLimit && !this.reportedMemory.has(target.name)) {
      this.reportedMemory.add(target.name);
      this.record(target.name, 'memory', `RSS grew from ${mib(stats.rssBaseline)} to ${mib(rss)} after ${stats.cases} cases`, []);
    }
  }

  /**
   * Runs cases 0, 1, 2, … (round-robin over the targets) with `concurrency` connections per
   * target, until `count` cases have run or `seconds` have passed, whichever comes first.
   */
  async run(limit: { count?: number; seconds?: number }, onProgress?: (done: number) => void): Promise<number> {
    const stopAt = limit.seconds === undefined ? Infinity : Date.now() + limit.seconds * 1000;
    const count = limit.count ?? Infinity;
    const perTarget = TARGET_NAMES.length;
    let done = 0;
    const worker = async (t: number, lane: number): Promise<void> => {
      for (let k = lane; ; k += this.config.concurrency) {
        const index = k * perTarget + t;
        if (index >= count || Date.now() >= stopAt) return;
        await this.runCase(buildCase(this.config.seed, index, this.config.maxPauseMs));
        done++;
        onProgress?.(done);
      }
    };
    const workers: Promise<void>[] = [];
    for (let t = 0; t < perTarget; t++) {
      if (!this.config.targets.includes(TARGET_NAMES[t] as TargetName)) continue;
      for (let lane = 0; lane < this.config.concurrency; lane++) workers.push(worker(t, lane));
    }
    await Promise.all(workers);
    for (const target of this.targets.values()) {
      this.sampleRss(target, this.stats.get(target.name) as TargetStats);
      await this.checkHealth(target, []);
      await this.probe(target, `/c/probe-${++this.probes}`);
    }
    return done;
  }

  async close(): Promise<void> {
    for (const t of this.targets.values()) await t.stop();
    for (const o of this.origins.values()) await o.close();
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

export const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
