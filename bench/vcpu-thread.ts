// What it costs when a vCPU's KVM_RUN moves to another thread: the measurement behind the rule
// that a shard never hands a running guest to another thread. A trivial real-mode guest (`out 0x10, al; jmp` back: each
// KVM_RUN exits once, KVM_EXIT_IO) is run on the thread that created its vCPU (the baseline),
// then handed back and forth to a worker thread (descriptors are process-wide, so the worker
// issues KVM_RUN on the same vCPU fd), timing the first KVM_RUN after each move, the runs after
// it, and, as a control, the first run after the same pause without a move. The KVM API
// documentation warns that the first ioctl from a new thread can be slow: before Linux's 2024
// patch "KVM: Protect vCPU's "last run PID" with rwlock, not RCU", KVM_RUN's change of
// `vcpu->pid` waited in synchronize_rcu(). What that wait costs on this machine is timed too, by
// the one system call that does nothing else: membarrier(MEMBARRIER_CMD_GLOBAL). Usage:
//   node --import tsx bench/vcpu-thread.ts [--handoffs 200] [--runs 20] [-n 2000] [--grace 20]
import { release } from 'node:os';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { Kvm } from '../src/kvm/kvm.ts';
import * as K from '../src/kvm/constants.ts';
import { lastErrno, mmap, MAP_ANONYMOUS, MAP_PRIVATE, munmap, PROT_READ, PROT_WRITE, SysError } from '../src/kvm/libc.ts';
import { Vcpu } from '../src/kvm/vcpu.ts';
import { Vm } from '../src/kvm/vm.ts';
import { machineLine, percentile, printTable } from './lib.ts';

/** The port the guest writes to; an exit on any other means the guest is not running our code. */
const PORT = 0x10;
/** At guest address 0: `out 0x10, al` then `jmp 0`. */
const CODE = [0xe6, PORT, 0xeb, 0xfc];

// syscall(2) for membarrier, which glibc does not wrap. Bound here, not in src/kvm/libc.ts, which
// binds what tinyedge itself calls.
const syscall = koffi.load('libc.so.6').func('long syscall(long number, ...)') as (number: number, ...args: unknown[]) => number;
const SYS_MEMBARRIER = 324;
const MEMBARRIER_CMD_GLOBAL = 1;

/**
 * How long synchronize_rcu() takes here, in µs, `count` times: membarrier(MEMBARRIER_CMD_GLOBAL)
 * is that call alone on a machine of more than one CPU. A SysError where it is refused (EINVAL
 * under nohz_full, ENOSYS without CONFIG_MEMBARRIER).
 */
function timeGracePeriods(count: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const result = syscall(SYS_MEMBARRIER, 'int', MEMBARRIER_CMD_GLOBAL, 'unsigned int', 0, 'int', 0);
    times.push((performance.now() - start) * 1000);
    if (result < 0) throw new SysError('membarrier(MEMBARRIER_CMD_GLOBAL)', lastErrno());
  }
  return times;
}

/** What the worker is given: the VM's and the vCPU's descriptors, which are process-wide. */
interface Handle {
  readonly vmFd: number;
  readonly vcpuFd: number;
}

/** Main thread → worker: run the vCPU `runs` times, or answer at once (a pause without a move). */
type Request = { readonly kind: 'run'; readonly runs: number } | { readonly kind: 'ping' };

/** Runs the vCPU `runs` times; returns how long each KVM_RUN took, in µs. */
function timeRuns(vcpu: Vcpu, runs: number): number[] {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const exit = vcpu.enter();
    times.push((performance.now() - start) * 1000);
    if (exit !== 'io' || vcpu.ioPort() !== PORT) throw new Error(`KVM_RUN exited with ${exit} (reason ${vcpu.exitReason()}, port ${vcpu.ioPort()}), not the guest's out to port ${PORT}`);
  }
  return times;
}

/** The worker: wraps the creator's vCPU descriptor (mapping its kvm_run page) and runs it on request. */
function serveWorker(handle: Handle): void {
  const port = parentPort;
  if (port === null) throw new Error('vcpu-thread: the worker has no parent port');
  // Its own /dev/kvm (the wrappers take the size of kvm_run from it) and its own mapping of the
  // vCPU's kvm_run page, both kept until the process exits: Vcpu.close() would also close the
  // vCPU's descriptor, which the main thread owns and closes.
  const kvm = new Kvm();
  const vcpu = new Vcpu(new Vm(kvm, handle.vmFd), handle.vcpuFd);
  port.on('message', (request: Request) => {
    port.postMessage(request.kind === 'run' ? timeRuns(vcpu, request.runs) : []);
  });
}

/** Sends `request` to the worker and waits for its answer. */
function ask(worker: Worker, request: Request): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const answered = (times: number[]): void => {
      worker.off('error', failed);
      resolve(times);
    };
    const failed = (err: Error): void => {
      worker.off('message', answered);
      reject(err);
    };
    worker.once('message', answered);
    worker.once('error', failed);
    worker.postMessage(request);
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      handoffs: { type: 'string', default: '200' },
      runs: { type: 'string', default: '20' },
      n: { type: 'string', short: 'n', default: '2000' },
      grace: { type: 'string', default: '20' },
    },
  });
  const handoffs = Number(values.handoffs);
  const runsPerTurn = Number(values.runs);
  const n = Number(values.n);
  const graces = Number(values.grace);
  if (!(handoffs >= 2 && handoffs % 2 === 0 && runsPerTurn >= 2 && n >= 1 && graces >= 1)) throw new Error('--handoffs must be even and ≥ 2, --runs ≥ 2, -n ≥ 1, --grace ≥ 1');

  // A real-mode guest: one page of memory at 0 holding CODE, CS based at 0, RIP 0.
  const kvm = new Kvm();
  const vm = kvm.createVm();
  const memory = mmap(4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  new Uint8Array(memory.buffer).set(CODE, 0);
  vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, size: memory.length, userspaceAddr: memory.address });
  const vcpu = vm.createVcpu();
  const sregs = vcpu.getSregs();
  sregs.writeBigUInt64LE(0n, K.SREGS.cs); // kvm_segment.base
  sregs.writeUInt16LE(0, K.SREGS.cs + 12); // kvm_segment.selector
  vcpu.setSregs(sregs);
  vcpu.setReg('rip', 0);
  vcpu.setReg('rflags', 2);

  // (a) On the creating thread: after a warm-up, every run is the steady cost of a KVM_RUN round trip.
  timeRuns(vcpu, 100);
  const baseline = timeRuns(vcpu, n);

  // The worker loads the modules through tsx, as this thread did (an eval worker's own loader).
  const shim = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); });`;
  const handle: Handle = { vmFd: vm.fd, vcpuFd: vcpu.fd };
  const worker = new Worker(shim, { eval: true, workerData: handle });
  await ask(worker, { kind: 'ping' });

  const toWorker: number[] = [];
  const toCreator: number[] = [];
  const afterMove: number[] = [];
  const samePause: number[] = [];
  for (let h = 0; h < handoffs / 2; h++) {
    // (b, c) Creator → worker: the worker's first run, then the rest of its turn.
    const there = await ask(worker, { kind: 'run', runs: runsPerTurn });
    toWorker.push(there[0]!);
    afterMove.push(...there.slice(1));
    // (b, c) Worker → creator: this thread's first run after the move back, and the rest.
    const back = timeRuns(vcpu, runsPerTurn);
    toCreator.push(back[0]!);
    afterMove.push(...back.slice(1));
    // Control: the same pause (a message round trip) with the vCPU staying on this thread.
    await ask(worker, { kind: 'ping' });
    samePause.push(timeRuns(vcpu, 1)[0]!);
  }
  await worker.terminate();
  vcpu.close();
  vm.close();
  munmap(memory);
  kvm.close();

  let grace: number[] | string;
  try {
    grace = timeGracePeriods(graces);
  } catch (err) {
    if (!(err instanceof SysError)) throw err;
    grace = err.message;
  }

  const sorted = (values: number[]): number[] => [...values].sort((a, b) => a - b);
  const base = percentile(sorted(baseline), 50);
  const row = (name: string, values: number[]): Array<string | number> => {
    const s = sorted(values);
    const p50 = percentile(s, 50);
    return [name, p50, percentile(s, 90), s[s.length - 1]!, `${(p50 / base).toFixed(2)}×`, String(values.length)];
  };
  console.log(`vCPU thread change — ${machineLine()}, Linux ${release()}; a real-mode guest whose every KVM_RUN exits once (KVM_EXIT_IO); threads unpinned`);
  printTable(['case', 'median µs', 'p90 µs', 'max µs', 'vs baseline', 'n'], [
    row('(a) KVM_RUN on the thread that created the vCPU (baseline)', baseline),
    row('(b) first KVM_RUN after a move to another thread, both ways', [...toWorker, ...toCreator]),
    row('    creator → worker', toWorker),
    row('    worker → creator', toCreator),
    row('(c) the following KVM_RUNs on the new thread', afterMove),
    row('control: first KVM_RUN after the same pause, no move', samePause),
    typeof grace === 'string'
      ? ['(d) synchronize_rcu(), which older kernels add to (b)', grace, '', '', '', '0']
      : row('(d) synchronize_rcu(), which older kernels add to (b)', grace),
  ]);
}

if (isMainThread) await main();
else serveWorker(workerData as Handle);
