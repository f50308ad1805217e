// The batched WAIT of ABI version 2 (docs/guest-abi.md, "Batches"), seen from the host: several
// requests laid out in the program's request region behind one te_batch, with a zeroed response
// slot for each, and what the program wrote back: which request's handler runs (`current`) and
// how many it answered. The host reads only its own addresses (never the pointers in the
// te_batch, which the program can overwrite) and bounds every index the program hands it.
import type { GuestMemory } from '../vmm/memory/guest-memory.ts';
import { pageAlignUp } from '../vmm/x86/layout.ts';
import { SandboxError } from '../vmm/errors.ts';
import { layRequest, type RequestLayout } from './abi.ts';
import { BATCH_ABI_VERSION, TE_BATCH, TE_RESPONSE } from './abi-layout.ts';
import type { SandboxRequest } from './types.ts';

/** Most requests in one batch: the pool's bound, whatever the queue holds. */
export const MAX_BATCH = 64;

/** One request to lay out: the request, its entropy and its layout (phase, deliver's response, version). */
export interface BatchRequest {
  req: SandboxRequest;
  random: Uint8Array;
  layout: RequestLayout;
}

/** A batch as written: where its te_batch is, how many requests it took, and where their response slots are. */
export interface WrittenBatch {
  at: number;
  count: number;
  slots: number[];
}

const align8 = (n: number): number => Math.ceil(n / 8) * 8;

/** Where a program's requests go: its request region, and the most one request may take of it. */
export interface RequestRoom {
  region: number;
  /** Bytes of the region. */
  size: number;
  /** Bytes one request may take (its te_request, headers, strings and body): maxRequestBytes, in whole pages. */
  perRequest: number;
}

/**
 * The request region of a program whose requests may be `maxRequestBytes`: room for one of that
 * size behind the te_batch of one (its pointer and response slot), in whole pages.
 */
export function requestRegionBytes(maxRequestBytes: number): number {
  return pageAlignUp(pageAlignUp(maxRequestBytes) + TE_BATCH.SIZE + 8 + TE_RESPONSE.SIZE);
}

/** The room of a program with this region and maxRequestBytes. */
export function requestRoom(region: number, maxRequestBytes: number): RequestRoom {
  return { region, size: requestRegionBytes(maxRequestBytes), perRequest: pageAlignUp(maxRequestBytes) };
}

/**
 * Writes as many of `requests` (at most MAX_BATCH) as fit into [region, region+size), in order:
 * the te_batch, its array of request pointers, the zeroed response slots, then the requests.
 * The first must fit (else the SandboxError of a request too large is thrown); the batch ends
 * before the first later one that does not.
 */
export function writeBatch(mem: GuestMemory, room: RequestRoom, requests: readonly BatchRequest[]): WrittenBatch {
  const cap = Math.min(requests.length, MAX_BATCH);
  try {
    return layBatch(mem, room, requests, cap);
  } catch (err) {
    // Room for many slots may be what the first request lacks: alone, it gets the most room there is.
    if (cap > 1 && err instanceof SandboxError && err.kind === 'program') return layBatch(mem, room, requests, 1);
    throw err;
  }
}

function layBatch(mem: GuestMemory, { region, size, perRequest }: RequestRoom, requests: readonly BatchRequest[], cap: number): WrittenBatch {
  const pointersAt = region + TE_BATCH.SIZE;
  const slotsAt = pointersAt + cap * 8;
  const headerBytes = TE_BATCH.SIZE + cap * 8 + cap * TE_RESPONSE.SIZE;
  let cursor = region + headerBytes;
  const addresses: number[] = [];
  for (let i = 0; i < cap; i++) {
    const { req, random, layout } = requests[i]!;
    const room = Math.min(region + size - cursor, perRequest);
    try {
      if (room <= 0) throw new SandboxError('program', `request exceeds the room left in the program's request region`);
      const { at, bytes } = layRequest(mem, cursor, room, req, random, layout);
      addresses.push(at);
      cursor = align8(at + bytes);
    } catch (err) {
      if (i > 0 && err instanceof SandboxError && err.kind === 'program') break;
      throw err;
    }
  }
  const count = addresses.length;
  const header = mem.writable(region, headerBytes);
  const v = new DataView(header.buffer, header.byteOffset, header.byteLength);
  header.fill(0);
  const u64 = (at: number, value: number): void => {
    v.setUint32(at, value >>> 0, true);
    v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
  };
  v.setUint32(TE_BATCH.count, count, true);
  u64(TE_BATCH.requests, pointersAt);
  u64(TE_BATCH.responses, slotsAt);
  addresses.forEach((at, i) => u64(TE_BATCH.SIZE + i * 8, at));
  return { at: region, count, slots: addresses.map((_, i) => slotsAt + i * TE_RESPONSE.SIZE) };
}

/**
 * The index the program says its running handler has (te_batch.current), if it moved on from
 * `known` and is in the batch; otherwise `known`: a program cannot go back, nor past the end.
 */
export function batchCurrent(mem: GuestMemory, batch: WrittenBatch, known: number): number {
  const c = mem.u32(batch.at + TE_BATCH.current);
  return c > known && c < batch.count ? c : known;
}

/** How many requests the program answered (te_batch.answered), or undefined when that is not 1 to count. */
export function batchAnswered(mem: GuestMemory, batch: WrittenBatch): number | undefined {
  const a = mem.u32(batch.at + TE_BATCH.answered);
  return a >= 1 && a <= batch.count ? a : undefined;
}

/** A lone request laid out as the program's version reads it: where WAIT points, and (version 2) its batch. */
export interface WrittenOne {
  at: number;
  batch?: WrittenBatch;
}

/** Writes one request: a te_request for a version-1 program, a batch of one for a later one. */
export function writeOne(mem: GuestMemory, room: RequestRoom, request: BatchRequest, abiVersion: number): WrittenOne {
  if (abiVersion < BATCH_ABI_VERSION) return { at: layRequest(mem, room.region, room.perRequest, request.req, request.random, request.layout).at };
  const batch = writeBatch(mem, room, [request]);
  return { at: batch.at, batch };
}

/**
 * Where the answer to a lone request is, once the program's WAIT came back with `waitArg`:
 * version 1, the te_response it names; later, slot 0 of its batch, which it must name and have
 * answered (else the request fails as a bad response).
 */
export function oneResponseAt(mem: GuestMemory, written: WrittenOne, waitArg: number): number {
  const { batch } = written;
  if (!batch) return waitArg;
  if (waitArg !== batch.at) throw new SandboxError('bad-response', `program answered a batch it was not given (WAIT with 0x${waitArg.toString(16)})`);
  if (batchAnswered(mem, batch) !== 1) throw new SandboxError('bad-response', 'program ended a batch without saying which requests it answered');
  return batch.slots[0]!;
}
