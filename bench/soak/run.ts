// One soak run (bench/soak.ts, test/soak/soak.test.ts): the built `tinyedge serve` as a child
// process with three tenants, paced load from the soak process, the origin in trouble by turns,
// live uploads and reloads on their schedules, and the server's RSS and open fds sampled from
// /proc; the facts go to report.ts for the verdict.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { HOSTS, OPERATOR_TOKEN, soakConfig, type SoakPrograms } from './config.ts';
import { type OriginPhase, PHASE_CYCLE, SoakOrigin } from './origin.ts';
import { type AdminAction, judge, ORIGIN_SOCKET, type Sample, type SoakReport } from './report.ts';
import { oneRequest, type Outcome, type TrafficState } from './traffic.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');

export interface SoakOptions {
  readonly durationMs: number;
  /** Load before the measured stretch: RSS and fds are compared from its end. */
  readonly warmupMs: number;
  /** Requests per second the load aims at (paced, so a slow server gets fewer, not a queue). */
  readonly rate: number;
  readonly concurrency: number;
  readonly uploadEveryMs: number;
  readonly reloadEveryMs: number;
  /** Length of each origin phase (normal and trouble alternate). */
  readonly phaseMs: number;
  readonly programs: SoakPrograms;
  /** Largest RSS growth from the end of warm-up to the end that passes (issue 15: 0.10). */
  readonly rssGrowthLimit?: number;
  /** Progress lines (default: none). */
  readonly say?: (line: string) => void;
}

/** The schedules for a run of `durationMs`: issue 15's (uploads 30 s, reloads 45 s) scaled down for short runs. */
export function scheduleFor(durationMs: number): Pick<SoakOptions, 'warmupMs' | 'uploadEveryMs' | 'reloadEveryMs' | 'phaseMs'> {
  return {
    // The server's RSS climbs to its plateau over its first two minutes (V8 heaps of the shard
    // threads growing to their working size, VM shells pooled by the first uploads and reloads).
    warmupMs: Math.min(120_000, Math.round(durationMs / 3)),
    uploadEveryMs: Math.min(30_000, Math.round(durationMs / 6)),
    reloadEveryMs: Math.min(45_000, Math.round(durationMs / 4)),
    phaseMs: Math.min(5_000, Math.round(durationMs / 24)),
  };
}

interface Server {
  readonly child: ChildProcess;
  readonly front: string;
  readonly admin: string;
  readonly exited: Promise<number | null>;
}

/** Starts `tinyedge serve` and reads its front and admin URLs from its start-up line. */
async function startServer(config: string, dir: string): Promise<Server> {
  const child = spawn(process.execPath, [join(ROOT, 'bin/tinyedge.js'), 'serve', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(join(dir, 'server.log'));
  child.stdout!.pipe(log);
  let err = '';
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const urls = await new Promise<[string, string]>((res, rej) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      log.write(d);
      const m = /serving \d+ tenant\(s\) on (http:\/\/\S+) \(admin API on (http:\/\/\S+)\)/.exec(err);
      if (m) res([m[1]!, m[2]!]);
    });
    void exited.then((code) => rej(new Error(`tinyedge serve exited ${code} before serving:\n${err}`)));
  });
  return { child, front: urls[0], admin: urls[1], exited };
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return { at: Date.now(), rssKiB: rss ? Number(rss[1]) : NaN, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** The inodes of the TCP sockets (v4 and v6) whose remote port is `port`: connections to it. */
function socketsTo(pid: number, port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode …
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length > 9 && parseInt(cols[2]!.split(':')[1]!, 16) === port) inodes.add(cols[9]!);
    }
  }
  return inodes;
}

/**
 * What the process's open fds are, by kind ("socket", "anon_inode:[eventfd]", a file's path);
 * its connections to the origin are "socket to the origin".
 */
function fdKinds(pid: number, originPort: number): string[] {
  const toOrigin = socketsTo(pid, originPort);
  const kinds: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const socket = /^socket:\[(\d+)\]$/.exec(link);
      kinds.push(socket ? (toOrigin.has(socket[1]!) ? ORIGIN_SOCKET : 'socket') : link.replace(/^pipe:\[\d+\]$/, 'pipe'));
    } catch {
      // Closed between the listing and the look.
    }
  }
  return kinds.sort();
}

async function admin(server: Server, method: string, path: string, body?: Buffer): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await request(`${server.admin}${path}`, { method, headers: { authorization: `Bearer ${OPERATOR_TOKEN}` }, body });
  return { status: r.statusCode, json: (await r.body.json()) as Record<string, unknown> };
}

async function programVersion(server: Server, tenant: string, program: string): Promise<number> {
  const { json } = await admin(server, 'GET', `/v1/tenants/${tenant}`);
  const p = (json.programs as Array<{ name: string; version: string | null }>).find((x) => x.name === program);
  return Number(/@(\d+)$/.exec(p?.version ?? '')?.[1] ?? NaN);
}

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const say = opts.say ?? ((): void => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'tinyedge-soak-'));
  const configFile = join(dir, 'tinyedge.yaml');
  const slowMs = 1_500;
  const origin = await SoakOrigin.start(slowMs);
  writeFileSync(configFile, soakConfig(origin.url, opts.programs, 0));
  const server = await startServer(configFile, dir);
  const pid = server.child.pid!;
  say(`soak: tinyedge serve (pid ${pid}) on ${server.front}, admin ${server.admin}, origin ${origin.url}; its log, samples.json, not-ok.json and report.json in ${dir}`);

  const outcomes: Outcome[] = [];
  const state: TrafficState = { misses: 0, counts: [] };
  const samples: Sample[] = [];
  const uploads: AdminAction[] = [];
  const reloads: AdminAction[] = [];
  let client = new Agent({ connections: opts.concurrency, headersTimeout: 20_000, bodyTimeout: 20_000 });
  let stopped = false;
  let paused: Promise<void> | null = null;
  let inFlight = 0;
  const t0 = Date.now();

  // The load: `concurrency` loops, each paced to its share of `rate`.
  const interval = (opts.concurrency * 1000) / opts.rate;
  const loop = async (): Promise<void> => {
    let next = Date.now();
    while (!stopped) {
      if (paused) {
        await paused;
        next = Date.now();
        continue;
      }
      inFlight++;
      outcomes.push(await oneRequest(client, server.front, state, origin.lastServed));
      inFlight--;
      next += interval;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      else next = Date.now();
    }
  };

  // With no load and no connection on either side, the fds the server holds are its own.
  let adminBusy: Promise<void> = Promise.resolve();
  const quietFds = async (): Promise<string[]> => {
    let resume!: () => void;
    paused = new Promise((r) => (resume = r));
    while (inFlight > 0) await sleep(20);
    await adminBusy;
    await client.close();
    client = new Agent({ connections: opts.concurrency, headersTimeout: 20_000, bodyTimeout: 20_000 });
    origin.dropConnections();
    await sleep(1_500);
    // The smallest of twelve looks, a quarter of a second apart: a connection still closing on a
    // busy machine is not a leak.
    let fds = fdKinds(pid, origin.port);
    for (let i = 0; i < 11; i++) {
      await sleep(250);
      const again = fdKinds(pid, origin.port);
      if (again.length < fds.length) fds = again;
    }
    paused = null;
    resume();
    return fds;
  };

  const sampler = setInterval(() => samples.push(sample(pid)), 1_000);
  let phaseIndex = 0;
  let phaseChange: Promise<void> = Promise.resolve();
  const phases = setInterval(() => {
    phaseIndex = (phaseIndex + 1) % PHASE_CYCLE.length;
    const next: OriginPhase = PHASE_CYCLE[phaseIndex]!;
    phaseChange = phaseChange.then(() => origin.setPhase(next));
  }, opts.phaseMs);

  const upload = async (n: number): Promise<void> => {
    const [tenant, program, file] = n % 2 === 0 ? ['beta', 'app', opts.programs.app] : ['gamma', 'persist', opts.programs.persistent];
    const at = Date.now();
    const what = `upload ${tenant}/${program} #${n + 1}`;
    try {
      const r = await admin(server, 'PUT', `/v1/tenants/${tenant}/programs/${program}`, readFileSync(file));
      uploads.push({ what, at, ms: Date.now() - at, ...(r.status === 200 ? {} : { problem: `status ${r.status}: ${JSON.stringify(r.json)}` }) });
    } catch (err) {
      uploads.push({ what, at, ms: Date.now() - at, problem: (err as Error).message });
    }
  };
  const reload = async (n: number): Promise<void> => {
    const at = Date.now();
    const how = n % 2 === 0 ? 'admin API' : 'SIGHUP';
    const what = `reload #${n + 1} (${how})`;
    let problem: string | undefined;
    try {
      const before = await programVersion(server, 'beta', 'app');
      writeFileSync(configFile, soakConfig(origin.url, opts.programs, ((n + 1) % 2) as 0 | 1));
      if (how === 'admin API') {
        const r = await admin(server, 'POST', '/v1/reload');
        const changed = JSON.stringify(r.json.tenantsChanged);
        if (r.status !== 200 || changed !== '["beta","gamma"]') problem = `status ${r.status}, tenants changed ${changed}`;
      } else {
        server.child.kill('SIGHUP');
        // A SIGHUP answers nothing: the reload shows as beta's program loaded again from its file.
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline && !((await programVersion(server, 'beta', 'app')) > before)) await sleep(100);
        if (!((await programVersion(server, 'beta', 'app')) > before)) problem = 'beta/app not loaded again within 30 s of SIGHUP';
      }
    } catch (err) {
      problem = (err as Error).message;
    }
    reloads.push({ what, at, ms: Date.now() - at, ...(problem === undefined ? {} : { problem }) });
  };
  // Uploads and reloads one at a time, in the order they fall due.
  const due = { upload: opts.uploadEveryMs, reload: opts.reloadEveryMs };
  const adminTimer = setInterval(() => {
    const elapsed = Date.now() - t0;
    if (paused || stopped) return;
    if (elapsed >= due.upload) {
      const n = Math.round(due.upload / opts.uploadEveryMs) - 1;
      due.upload += opts.uploadEveryMs;
      adminBusy = adminBusy.then(() => upload(n));
    }
    if (elapsed >= due.reload) {
      const n = Math.round(due.reload / opts.reloadEveryMs) - 1;
      due.reload += opts.reloadEveryMs;
      adminBusy = adminBusy.then(() => reload(n));
    }
  }, 100);

  const loops = Array.from({ length: opts.concurrency }, loop);
  const progress = setInterval(() => say(`soak: +${Math.round((Date.now() - t0) / 1000)} s, ${outcomes.length} requests, origin ${origin.phase}, ${uploads.length} uploads, ${reloads.length} reloads, RSS ${((samples.at(-1)?.rssKiB ?? 0) / 1024).toFixed(1)} MiB`), 10_000);
  await sleep(opts.warmupMs);
  const warmupEnd = Date.now();
  const fdsAfterWarmup = await quietFds();
  say(`soak: warm-up over, ${fdsAfterWarmup.length} fds idle`);
  await sleep(Math.max(0, t0 + opts.durationMs - Date.now()));
  const loadEnd = Date.now();
  clearInterval(adminTimer);
  clearInterval(phases);
  await adminBusy;
  await phaseChange;
  await origin.setPhase('ok');
  stopped = true;
  await Promise.all(loops);
  const fdsAtEnd = await quietFds();
  clearInterval(progress);
  clearInterval(sampler);
  const finalCount = await request(`${server.front}/b/app/count`, { dispatcher: client, headers: { host: HOSTS.beta } })
    .then(async (r) => Number(/^count=(\d+)/.exec(await r.body.text())?.[1] ?? NaN))
    .catch(() => null);
  await client.close();
  server.child.kill('SIGTERM');
  const exitCode = await server.exited;
  await origin.close();
  // For reading after the run: the server's samples, and every request that was not plainly ok.
  writeFileSync(join(dir, 'samples.json'), JSON.stringify(samples));
  writeFileSync(join(dir, 'not-ok.json'), JSON.stringify(outcomes.filter((o) => o.status === null || o.status >= 500 || o.problem !== undefined)));
  const report = judge({
    outcomes, windows: origin.windows, faultSlackMs: slowMs + 2_000, counts: state.counts, finalCount,
    uploads, reloads, originProblems: origin.problems, samples, warmupEnd, loadEnd, quietFds: [fdsAfterWarmup, fdsAtEnd], exitCode,
    rssGrowthLimit: opts.rssGrowthLimit ?? 0.1,
  });
  writeFileSync(join(dir, 'report.json'), JSON.stringify(report, null, 1));
  return report;
}
