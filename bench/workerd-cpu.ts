// How much of the server's core other processes took while wrk ran. The benchmark pins each
// server to one CPU, but nothing keeps other work (tests, compilers) off that CPU; a number here
// tells whether a row measured the server or a busy machine; the server's own CPU time per
// response is the figure that compares on a busy one. Linux /proc only.
import { readFileSync } from 'node:fs';

interface CpuSample {
  /** user + nice + system ticks of the CPU, and of the server process (all its threads). */
  readonly cpuBusy: number;
  readonly cpuSteal: number;
  readonly cpuTotal: number;
  readonly server: number;
}

function cpuLine(cpu: string): number[] | undefined {
  const line = readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`cpu${cpu} `));
  return line?.trim().split(/\s+/).slice(1).map(Number);
}

function processTicks(pid: number): number {
  // Fields after the parenthesised command name (which may hold spaces): utime is the 14th field
  // of the line, stime the 15th, i.e. 11th and 12th after ") ".
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}

/** A sample of CPU `cpu` and process `pid`, or undefined where /proc does not say. */
export function sampleCpu(cpu: string | undefined, pid: number | undefined): CpuSample | undefined {
  if (cpu === undefined || pid === undefined) return undefined;
  try {
    const f = cpuLine(cpu);
    if (f === undefined || f.length < 8) return undefined;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
    return { cpuBusy: user + nice + system, cpuSteal: steal, cpuTotal: user + nice + system + idle + iowait + irq + softirq + steal, server: processTicks(pid) };
  } catch {
    return undefined;
  }
}

export interface Contention {
  /** Share of the CPU's time spent in processes other than the server (user + system), in %. */
  readonly othersPct: number;
  /** Share the hypervisor took from this virtual CPU (steal), in %. */
  readonly stealPct: number;
}

/** What happened on the CPU between two samples; undefined if either is missing. */
export function contention(before: CpuSample | undefined, after: CpuSample | undefined): Contention | undefined {
  if (before === undefined || after === undefined) return undefined;
  const total = after.cpuTotal - before.cpuTotal;
  if (total <= 0) return undefined;
  // Softirq time (loopback packet processing) is left out on purpose: it is the load itself.
  const others = after.cpuBusy - before.cpuBusy - (after.server - before.server);
  return { othersPct: Math.max(0, (100 * others) / total), stealPct: (100 * (after.cpuSteal - before.cpuSteal)) / total };
}

/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on every Linux x86-64 build). */
const USER_HZ = 100;

/**
 * The server's CPU time (user + system, all its threads) per response between two samples, in µs:
 * unlike req/s, it hardly moves when other processes share the core, so it compares builds on a
 * busy machine. Undefined if either sample is missing.
 */
export function serverUsPerResponse(before: CpuSample | undefined, after: CpuSample | undefined, responses: number): number | undefined {
  if (before === undefined || after === undefined || !(responses > 0)) return undefined;
  return ((after.server - before.server) * 1e6) / USER_HZ / responses;
}
