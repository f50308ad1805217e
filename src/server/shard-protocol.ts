// Messages between the main thread (shard 0, which coordinates) and the other shards' threads.
// Tenant configs, loaded programs and exported program snapshots are plain data and are
// structured-cloned; nothing here travels per request except key-value calls and log lines
// (request records travel in batches, and only while someone reads them; failure bundles are
// bounded to a few a second per tenant).
import type { SharedStoreHandle } from '../cache/index.ts';
import type { ExportedProgram, PoolProgramOptions } from '../sandbox/index.ts';
import type { EncodedBatch } from './record-batch.ts';
import type { FailureBundle } from './failure-bundles.ts';
import type { RecordScope } from './records.ts';
import type { ShardTenantStats, TenantUpdate } from './shard.ts';
import type { KvRequest } from './kv.ts';
import type { LoadedProgram } from './tenant.ts';

/** What a shard's thread starts with (its workerData). */
export interface ShardInit {
  index: number;
  shards: number;
  sliceMs: number;
  /** The cache every shard shares (made by the main thread). */
  cache: SharedStoreHandle;
}

/** Commands the main thread sends; each answers `done` (with a value) or `failed`, by id. */
export type ShardCommand =
  | { type: 'adopt'; key: string; program: ExportedProgram; options: PoolProgramOptions }
  | { type: 'unload'; key: string }
  | { type: 'update'; update: TenantUpdate }
  | { type: 'swap'; tenant: string; program: LoadedProgram }
  | { type: 'listen'; fd: number }
  | { type: 'purge'; tenant: string; url: string }
  | { type: 'purgeTag'; tenant: string; tag: string }
  | { type: 'ban'; tenant: string; expression: string }
  | { type: 'stats'; tenant: string }
  | { type: 'record'; scope: RecordScope }
  | { type: 'close' };

/** What each command answers with. */
export interface ShardAnswers {
  adopt: undefined;
  unload: undefined;
  update: undefined;
  swap: undefined;
  listen: undefined;
  purge: number;
  purgeTag: number;
  ban: undefined;
  stats: ShardTenantStats;
  record: undefined;
  close: undefined;
}

export type ToShard =
  | { type: 'command'; id: number; command: ShardCommand }
  | { type: 'kvResult'; callId: number; ok: true; value: unknown }
  | { type: 'kvResult'; callId: number; ok: false; message: string };

export type FromShard =
  | { type: 'ready' }
  | { type: 'done'; id: number; value: unknown }
  | { type: 'failed'; id: number; message: string }
  | { type: 'kv'; callId: number; tenant: string; request: KvRequest }
  | { type: 'log'; level: 'info' | 'warn'; details: Record<string, unknown>; message: string }
  | { type: 'records'; batch: EncodedBatch }
  | { type: 'bundle'; bundle: FailureBundle };
