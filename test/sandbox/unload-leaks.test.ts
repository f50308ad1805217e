// Program versions loaded and unloaded many times, as reloads and uploads do (issue 15's soak):
// every host resource a version takes — its snapshot's memfd and mappings (on the loader, on the
// pool that loads it and on one that adopts it), its VMs' fds, guest memory mappings and kvm_run
// pages — is given back when it is unloaded. Counted from /proc/self (fds by kind, mappings by
// kind and size), never timed: after the cycles, with the threads' idle VM shells drained, the
// counts are those of before. The loader's copy of each build is closed before `load` settles, so
// the counts do not depend on how soon the loader thread runs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { drainShellPool, ProgramPool, type PoolProgramOptions, type SandboxRequest } from '../../src/sandbox/index.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

/** An odd guest size, so that its mappings are told apart from everything else in the process. */
const MEMORY_MIB = 18;
const CYCLES = 24;

const get = (url: string): SandboxRequest => ({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) });

/** What the sandbox holds of the host, by kind: open fds and mappings. */
function hostResources(): Record<string, number> {
  const counts: Record<string, number> = {};
  const add = (kind: string): void => void (counts[kind] = (counts[kind] ?? 0) + 1);
  for (const fd of readdirSync('/proc/self/fd')) {
    let link: string;
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the directory's own fd, closed by now
    }
    if (link.startsWith('anon_inode:kvm')) add(`fd ${link}`);
    else if (link.startsWith('/memfd:')) add('fd memfd');
    else if (link === '/dev/kvm') add('fd /dev/kvm');
  }
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (!m) continue;
    const size = parseInt(m[2]!, 16) - parseInt(m[1]!, 16);
    const name = m[3]!;
    if (name.startsWith('/memfd:')) add('map memfd');
    else if (name.startsWith('anon_inode:kvm')) add(`map ${name}`);
    // Guest memory, snapshot views and pooled bare mappings: all exactly the guest's size.
    else if (size === MEMORY_MIB * 1024 * 1024) add('map guest-sized');
  }
  return counts;
}

describe('loading and unloading program versions', needsKvm(), () => {
  let pool: ProgramPool;
  /** Another thread's pool in the server; here a second pool on this thread, adopting each version. */
  let shard: ProgramPool;
  let elf: Buffer;
  const options: PoolProgramOptions = { mode: 'sdk', name: 'http_echo', memoryMiB: MEMORY_MIB, concurrency: 2, queueTimeoutMs: 10_000 };

  before(async () => {
    pool = await ProgramPool.start();
    shard = await ProgramPool.start();
    elf = readFileSync(buildGuest('http_echo'));
  });
  after(async () => {
    await shard?.close();
    await pool?.close();
  });

  /** Loads version `n` (warm-up on the loader, adopted by `shard`), runs calls on both pools, unloads it. */
  async function cycle(n: number): Promise<void> {
    const key = `t/echo@${n}`;
    await pool.load(key, elf, options, { req: get('/warm'), phase: 'generate' }, async (exported) => shard.adopt(key, exported, options));
    // Two at once on each pool: two instances (VMs) per version per pool. A call's usage is
    // settled once its instance is reset, and the pool closes an unloaded version's VMs then.
    const resets: Array<Promise<void>> = [];
    const answers = await Promise.all(
      [pool, pool, shard, shard].map((p, i) => {
        let settled!: () => void;
        resets.push(new Promise<void>((resolve) => (settled = resolve)));
        return p.call(key, get(`/v${n}/${i}`), { usage: { guestUs: 0, runUs: 0, exits: 0, dirtyPages: 0, settled } });
      }),
    );
    for (const [i, r] of answers.entries()) assert.match(Buffer.from(r.body).toString(), new RegExp(`^echo /v${n}/${i}\\n$`));
    pool.unload(key);
    shard.unload(key);
    // The instances' resets run after the answers; the versions close as the last one ends.
    await Promise.all(resets);
  }

  test(`${CYCLES} versions later the process holds the fds and mappings it held after the first`, async () => {
    // The first version starts the loader thread and takes the pristine vCPU state: not a leak.
    await cycle(0);
    drainShellPool();
    const baseline = hostResources();
    assert.equal(baseline['map guest-sized'] ?? 0, 0, 'drained: no guest-sized mapping left');
    for (let n = 1; n <= CYCLES; n++) await cycle(n);
    // Idle shells are kept on purpose (up to 16 per size and thread) and reused by the next load.
    const pooled = hostResources();
    assert.ok((pooled['fd anon_inode:kvm-vm'] ?? 0) <= 2 * 16 + (baseline['fd anon_inode:kvm-vm'] ?? 0), JSON.stringify(pooled));
    drainShellPool();
    assert.deepEqual(hostResources(), baseline);
  });
});
