// The persistent rows of bench/workerd.ts (issue 13): tinyedge serve running the hello program with
// `lifecycle: persistent`, one instance on the server's one core, once answering one request per
// VM entry (`maxBatch: 1`) and once in batches — with the proof that every request reached the
// program (the count the program keeps in its state, read before and after the load) and the VM
// exits each request cost (the tenant's stats).
import { REQUEST_HEADERS, serveLaunch } from './workerd-servers.ts';
import type { TenantCounters, TinyedgeLaunch } from './workerd-servers.ts';

/** Issue 13: a persistent hello serves ≥ 2 × workerd's req/s, with p99 ≤ 0.2 × workerd's and ≤ 3 × its own p50. */
export const TARGET_PERSISTENT_RPS = 2;
export const TARGET_PERSISTENT_P99_VS_WORKERD = 0.2;
export const TARGET_PERSISTENT_P99_VS_P50 = 3;

export interface PersistentVariant {
  readonly name: 'persistent' | 'batched';
  readonly label: string;
  readonly maxBatch: number;
}

export const PERSISTENT_VARIANTS: readonly PersistentVariant[] = [
  { name: 'persistent', label: 'tinyedge serve, persistent', maxBatch: 1 },
  { name: 'batched', label: 'tinyedge serve, persistent, batched', maxBatch: 64 },
];

/**
 * `tinyedge serve` with the persistent hello (guest/examples/hello_persistent.c) on every path,
 * one instance (the server has one core, and one instance makes the count the program keeps the
 * count of every request), requests passing the cache as for the ephemeral row.
 */
export function persistentLaunch(variant: PersistentVariant, root: string, dir: string, program: string, port: number, adminPort: number): TinyedgeLaunch {
  return serveLaunch({
    root, dir, program, port, adminPort, name: `tinyedge-${variant.name}`, label: variant.label,
    programKeys: ['lifecycle: persistent', 'concurrency: 1', `maxBatch: ${variant.maxBatch}`],
  });
}

/** The count of requests the program's one instance has answered (GET /count, itself one of them). */
export async function programCount(baseUrl: string): Promise<number> {
  const res = await fetch(`${baseUrl}/count`, { headers: REQUEST_HEADERS, signal: AbortSignal.timeout(5_000) });
  const text = (await res.text()).trim();
  if (res.status !== 200 || !/^\d+$/.test(text)) throw new Error(`GET ${baseUrl}/count answered ${res.status} ${JSON.stringify(text.slice(0, 100))}`);
  return Number(text);
}

/**
 * What the program's count says of the load: it answered `served` requests between the two reads
 * (the second read aside). wrk counts only the responses it completed, so served may exceed them
 * by the requests in flight when it stopped (at most one per connection), never fall short.
 */
export function judgeCount(before: number, after: number, responses: number, connections: number): { proof: string; problem?: string } {
  const served = after - before - 1;
  const proof = `the program counted ${served} requests in its state for ${responses} responses`;
  if (served < responses) return { proof, problem: `the program counted ${served} requests, fewer than the ${responses} responses: some did not reach it` };
  if (served > responses + connections) return { proof, problem: `the program counted ${served} requests, more than ${responses} responses + ${connections} in flight` };
  return { proof };
}

/** VM exits per VM call over the load, from the tenant's stats (a server without them: undefined). */
export function exitsPerRequest(before: TenantCounters, after: TenantCounters): { all: number; timer: number; batches: number } | undefined {
  const calls = after.vmCalls - before.vmCalls;
  if (after.vmExits === undefined || before.vmExits === undefined || calls <= 0) return undefined;
  return {
    all: (after.vmExits - before.vmExits) / calls,
    timer: ((after.vmTimerExits ?? 0) - (before.vmTimerExits ?? 0)) / calls,
    batches: (after.vmBatches ?? 0) - (before.vmBatches ?? 0),
  };
}
