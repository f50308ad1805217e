// CPU clocks tell a program its own CPU time and nothing about the host. test/guests/
// hostile_cpuclock.c probes every pid-encoded CPU-clock id Linux knows (MAKE_PROCESS_CPUCLOCK):
// its own pid and pid 0 must answer, with small times of its own; pids that exist on the host (2,
// the test runner) and one that does not (4000000) must all answer EINVAL alike. A request VM
// starts from the snapshot's CPU time, whatever earlier requests burnt
// (test/guests/hostile_cpuclock_sdk.c).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kvm } from '../../src/kvm/kvm.ts';
import { Program } from '../../src/sandbox/program.ts';
import { type Instance } from '../../src/sandbox/instance.ts';
import { CaptureStdio } from '../../src/sandbox/stdio.ts';
import { Machine } from '../../src/vmm/machine.ts';
import { ROOT, buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');
const WHICH = ['PROF', 'VIRT', 'SCHED', '3'];
const OWN = ['pid 0', 'own pid'];
const OTHERS = ['pid 2', 'runner pid', 'pid 4000000'];

/** The answer lines hostile_cpuclock prints (everything but the times). */
function expectedAnswers(): string {
  const lines = ['CLOCK_PROCESS_CPUTIME_ID: gettime=0 getres=0 nanosleep=0', 'CLOCK_THREAD_CPUTIME_ID: gettime=0 getres=0 nanosleep=-95'];
  for (const pid of [...OWN, ...OTHERS]) {
    const own = OWN.includes(pid);
    for (const kind of ['process', 'thread']) {
      for (const which of WHICH) {
        // A clock fd (process 3) cannot sleep; the caller's own thread clocks refuse to; the rest do not exist.
        const valid = own && which !== '3';
        const nanosleep = kind === 'process' && which === '3' ? -95 : valid && kind === 'process' ? 0 : -22;
        lines.push(`${pid} ${kind} ${which}: gettime=${valid ? 0 : -22} getres=${valid ? 0 : -22} nanosleep=${nanosleep}`);
      }
    }
  }
  lines.push(
    'CLOCK_REALTIME_ALARM: gettime=-22 getres=-22 nanosleep=-95',
    'CLOCK_BOOTTIME_ALARM: gettime=-22 getres=-22 nanosleep=-95',
    'clock 10: gettime=-22 getres=-22 nanosleep=-22',
    'clock 12: gettime=-22 getres=-22 nanosleep=-22',
    'clock 16: gettime=-22 getres=-22 nanosleep=-22',
    'clock fd 1000: gettime=-22 getres=-22 nanosleep=-95',
    'clock -1: gettime=-22 getres=-22 nanosleep=-22',
    'INT_MAX: gettime=-22 getres=-22 nanosleep=-22',
    'INT_MIN: gettime=-22 getres=-22 nanosleep=-22',
  );
  return lines.join('\n');
}

interface Probe {
  answers: string;
  /** The CPU time each of the program's own clocks read, in ns, by clock name. */
  times: Map<string, number>;
  spin: { cpuNs: number; wallNs: number };
}

function parse(stdout: string): Probe {
  const lines = stdout.trimEnd().split('\n');
  const times = new Map<string, number>();
  let spin: Probe['spin'] | undefined;
  const answers: string[] = [];
  for (const line of lines) {
    const ns = /^ns (.+) (\d+)$/.exec(line);
    const s = /^spin (\d+) (\d+)$/.exec(line);
    if (ns) times.set(ns[1]!, Number(ns[2]));
    else if (s) spin = { cpuNs: Number(s[1]), wallNs: Number(s[2]) };
    else answers.push(line);
  }
  assert.ok(spin, stdout);
  return { answers: answers.join('\n'), times, spin };
}

/** Every one of the program's own clocks answered: the two ids and the pid-encoded ones for pid 0 and its own pid. */
function ownClockNames(): string[] {
  const names = ['CLOCK_PROCESS_CPUTIME_ID', 'CLOCK_THREAD_CPUTIME_ID'];
  for (const pid of OWN) for (const kind of ['process', 'thread']) for (const which of WHICH.slice(0, 3)) names.push(`${pid} ${kind} ${which}`);
  return names;
}

describe('CPU clocks: only the program\'s own, with its own CPU time', needsKvm(), () => {
  let kvm: Kvm;

  before(() => {
    kvm = new Kvm();
  });

  after(() => {
    kvm.close();
  });

  test('in-process: other pids are EINVAL, the own clocks read the guest\'s time, far below the host process\'s', () => {
    const elf = readFileSync(buildGuest('hostile_cpuclock'));
    const stdio = new CaptureStdio(1 << 20);
    const m = Machine.boot(kvm, elf, { memoryMiB: 16, argv: ['hostile_cpuclock', String(process.pid)], env: [], stdio });
    try {
      assert.deepEqual(m.run(20_000), { kind: 'exit', status: 0 }, stdio.text());
    } finally {
      m.close();
    }
    const host = process.cpuUsage();
    const hostNs = (host.user + host.system) * 1000;
    const probe = parse(stdio.stdout().toString('utf8'));
    assert.equal(probe.answers, expectedAnswers());
    assert.deepEqual([...probe.times.keys()], ownClockNames());
    // The host process has run Node, the test runner and KVM set-up; the guest a few hundred calls.
    for (const [name, ns] of probe.times) assert.ok(ns < hostNs / 2, `${name} read ${ns} ns; this process has used ${hostNs} ns`);
    // Read in order, so each reading is at least the one before.
    const readings = [...probe.times.values()];
    readings.forEach((ns, i) => assert.ok(i === 0 || ns >= readings[i - 1]!, `readings go backwards: ${readings.join(' ')}`));
    // The guest's CPU time advances as it works, and never faster than time itself.
    assert.ok(probe.spin.cpuNs >= 30e6, `spun ${probe.spin.cpuNs} ns`);
    assert.ok(probe.spin.cpuNs <= probe.spin.wallNs + 1e6, `${probe.spin.cpuNs} ns of CPU time in ${probe.spin.wallNs} ns`);
  });

  test('tinyedge run: the same answers', async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'run', buildGuest('hostile_cpuclock'), String(process.pid)], { stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000, killSignal: 'SIGKILL' });
      const out: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.on('error', reject);
      child.on('close', (status) => (status === 0 ? resolve(Buffer.concat(out).toString('utf8')) : reject(new Error(`exit status ${status}`))));
    });
    const probe = parse(stdout);
    assert.equal(probe.answers, expectedAnswers());
    assert.deepEqual([...probe.times.keys()], ownClockNames());
  });

  test('a request starts from the snapshot\'s CPU time, not an earlier request\'s, in a reset instance as in a new one', () => {
    const program = new Program(kvm, readFileSync(buildGuest('hostile_cpuclock_sdk')), { mode: 'sdk', name: 'cpuclock' });
    const instances: Instance[] = [];
    try {
      const read = (inst: Instance, url: string): { start: number; end: number } => {
        const body = inst.handle({ method: 'GET', url, headers: [['Host', 'test']], body: new Uint8Array(0) }).body.toString();
        const m = /^start=(\d+) end=(\d+)\n$/.exec(body);
        assert.ok(m, body);
        return { start: Number(m[1]), end: Number(m[2]) };
      };
      const first = program.instance();
      instances.push(first);
      const spun = read(first, '/spin');
      assert.ok(spun.end - spun.start >= 200e6, `the request burnt ${spun.end - spun.start} ns`);
      // main() burnt 20 ms before the snapshot: that time is the snapshot's, in every instance.
      assert.ok(spun.start >= 20e6, `a request started at ${spun.start} ns`);
      const after = read(first, '/');
      const second = program.instance();
      instances.push(second);
      const fresh = read(second, '/');
      for (const [what, r] of [['after a reset', after], ['in a new instance', fresh]] as const) {
        assert.ok(r.start >= 20e6 && r.start < spun.start + 100e6, `${what}, a request started at ${r.start} ns; the one before at ${spun.start} ns and ended at ${spun.end} ns`);
      }
    } finally {
      for (const inst of instances) inst.close();
      program.close();
    }
  });
});
