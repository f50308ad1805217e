// What a purge by tag costs the shared store, and how long it holds the store's lock, with 1k, 10k
// and 100k objects in the tenant's namespace: through the tag index (`removeTag`) beside the scan
// it replaced (every record's tags read under the lock, as `removeTag` did before; reproduced
// here over the same buffers), measured in the same run. Also the distinct-tag count (a counter
// against the scan) and what the index adds to an insert. Medians in µs.
//   node --import tsx bench/tag-purge.ts [--reps 21] [--warmup 20] [--sizes 1000,10000,100000]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { CELL } from '../src/cache/shared/arena.ts';
import * as L from '../src/cache/shared/layout.ts';
import { lock, unlock } from '../src/cache/shared/lock.ts';
import { SharedStore, type RecordInit } from '../src/cache/shared/store.ts';
import { machineLine, median, printTable } from './lib.ts';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '21' }, warmup: { type: 'string', default: '20' }, sizes: { type: 'string', default: '1000,10000,100000' } } });
const REPS = Number(values.reps);
const WARMUP = Number(values.warmup);
const SIZES = values.sizes.split(',').map(Number);
/** Objects per group tag: 1 % of the namespace. */
const GROUPS = 100;

const key = (i: number): string => `http://example.com/objects/${i}?v=1`;
const meta = new Uint8Array(32);
const body = new Uint8Array(100).fill(7);
const init = (i: number, extra: readonly string[] = []): RecordInit => ({ meta, body, tags: [`obj-${i}`, `group-${i % GROUPS}`, ...extra], secondary: '' });

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The store's buffers, read the way its pre-index walks did. */
interface Raw { ctl: Int32Array; idx: Int32Array; u8: Uint8Array }

function raw(store: SharedStore): Raw {
  const h = store.handle();
  // The bench's store is far below a segment (2 GiB): cells count from segment 0's first byte.
  if (h.arena.length !== 1) throw new Error('the bench reads a store of one arena segment');
  const seg = h.arena[0]!;
  return { ctl: new Int32Array(h.control), idx: new Int32Array(h.index), u8: new Uint8Array(seg, 0, seg.byteLength) };
}

/** Tags of record slot `w` as [start, end) in the arena. */
function tagsOf(r: Raw, w: number): [number, number] {
  const at = r.idx[w + L.R_DATA]! * CELL + r.idx[w + L.R_KEY_LEN]! + r.idx[w + L.R_SEC_LEN]!;
  return [at, at + r.idx[w + L.R_TAGS_LEN]!];
}

/**
 * The records of `ns` carrying `tag`, found as `removeTag` did before the index: every record's
 * tags compared under the lock. Answers them (id, gen, flat) and how long the lock was held.
 */
function scanTag(r: Raw, ns: number, tag: string): { found: number[]; heldUs: number } {
  const tagBytes = encoder.encode(tag);
  lock(r.ctl, L.G_LOCK);
  const t = performance.now();
  const found: number[] = [];
  for (let id = r.ctl[L.nsOffset(ns) / 4 + L.N_LRU_HEAD]!; id !== L.NIL; id = r.idx[id * L.REC_WORDS + L.R_NS_NEXT]!) {
    const w = id * L.REC_WORDS;
    if (r.idx[w + L.R_TAG_COUNT] === 0) continue;
    let at = r.idx[w + L.R_DATA]! * CELL + r.idx[w + L.R_KEY_LEN]! + r.idx[w + L.R_SEC_LEN]!;
    const end = at + r.idx[w + L.R_TAGS_LEN]!;
    while (at <= end) {
      let stop = at;
      while (stop < end && r.u8[stop] !== 10) stop++;
      if (stop - at === tagBytes.length && L.bytesEqual(r.u8, at, tagBytes)) {
        found.push(id, r.idx[w + L.R_GEN]!);
        break;
      }
      at = stop + 1;
    }
  }
  const heldUs = (performance.now() - t) * 1000;
  unlock(r.ctl, L.G_LOCK);
  return { found, heldUs };
}

/** Distinct tags of `ns` as `tagCount` counted them before the index: every record's tags decoded under the lock. */
function scanTagCount(r: Raw, ns: number): number {
  lock(r.ctl, L.G_LOCK);
  try {
    const tags = new Set<string>();
    for (let id = r.ctl[L.nsOffset(ns) / 4 + L.N_LRU_HEAD]!; id !== L.NIL; id = r.idx[id * L.REC_WORDS + L.R_NS_NEXT]!) {
      const w = id * L.REC_WORDS;
      if (r.idx[w + L.R_TAG_COUNT] === 0) continue;
      const [at, end] = tagsOf(r, w);
      for (const t of decoder.decode(r.u8.subarray(at, end)).split('\n')) tags.add(t);
    }
    return tags.size;
  } finally {
    unlock(r.ctl, L.G_LOCK);
  }
}

function us(f: () => void): number {
  const t = performance.now();
  f();
  return (performance.now() - t) * 1000;
}

const rows: Array<Array<string | number>> = [];
for (const n of SIZES) {
  const store = SharedStore.create({ maxBytes: n * 1024, maxRecords: 2 * n });
  const ns = store.namespace('bench', n * 1024);
  // A neighbour with as many objects and the same tags: its records never slow the bench tenant's purge.
  const neighbour = store.namespace('neighbour', n * 1024);
  for (let i = 0; i < n; i++) {
    store.insert(ns, key(i), init(i));
    store.insert(neighbour, key(i), init(i));
  }
  const r = raw(store);
  const refill = (ids: readonly number[]): void => { for (const i of ids) store.insert(ns, key(i), init(i)); };
  const members = (g: number): number[] => Array.from({ length: n / GROUPS }, (_, k) => g + k * GROUPS);
  const one = { scanHeld: [] as number[], scanTotal: [] as number[], index: [] as number[] };
  const group = { scanHeld: [] as number[], scanTotal: [] as number[], index: [] as number[] };
  // The first WARMUP rounds let V8 compile both paths; they are not counted.
  for (let rep = 0; rep < WARMUP + REPS; rep++) {
    const record = rep >= WARMUP;
    for (const [m, tag, ids] of [[one, `obj-${rep % n}`, [rep % n]], [group, `group-${rep % GROUPS}`, members(rep % GROUPS)]] as const) {
      let held = 0;
      let total = 0;
      let index = 0;
      // Each goes first every other round: neither always pays for the other's garbage.
      for (const which of rep % 2 === 0 ? ['scan', 'index'] : ['index', 'scan']) {
        if (which === 'scan') {
          total = us(() => {
            const scan = scanTag(r, ns, tag);
            for (let i = 0; i < scan.found.length; i += 2) store.remove(scan.found[i]!, scan.found[i + 1]!);
            held = scan.heldUs;
            if (scan.found.length !== 2 * ids.length) throw new Error(`the scan found ${scan.found.length / 2} of ${ids.length}`);
          });
        } else {
          let removed = 0;
          index = us(() => { removed = store.removeTag(ns, tag); });
          if (removed !== ids.length) throw new Error(`removeTag removed ${removed} of ${ids.length}`);
        }
        refill(ids);
      }
      if (!record) continue;
      m.scanHeld.push(held);
      m.scanTotal.push(total);
      m.index.push(index);
    }
  }
  const countScan: number[] = [];
  const countIndex: number[] = [];
  /** stats(): a call that takes the lock and reads counters, for scale. */
  const lockedCall: number[] = [];
  for (let rep = 0; rep < WARMUP + REPS; rep++) {
    let a = 0;
    let b = 0;
    let scan = 0;
    let index = 0;
    if (rep % 2 === 0) scan = us(() => { a = scanTagCount(r, ns); });
    index = us(() => { b = store.tagCount(ns); });
    if (rep % 2 === 1) scan = us(() => { a = scanTagCount(r, ns); });
    const stats = us(() => { store.stats(ns); });
    if (a !== b || a !== n + GROUPS) throw new Error(`tag counts ${a} and ${b}, expected ${n + GROUPS}`);
    if (rep < WARMUP) continue;
    countScan.push(scan);
    countIndex.push(index);
    lockedCall.push(stats);
  }
  // Insert and replace the same key: 2 tags (as above), and 32 and 0 for the index's share.
  const insert = (extra: readonly string[], tagless = false): number => median(Array.from({ length: WARMUP + REPS }, (_, rep) => us(() => {
    store.insert(ns, key(rep % n), tagless ? { meta, body, tags: [], secondary: '' } : init(rep % n, extra));
  })).slice(WARMUP));
  const insert0 = insert([], true);
  const insert2 = insert([]);
  const insert32 = insert(Array.from({ length: 30 }, (_, t) => `extra-${t}`));
  const label = `${n / 1000}k`;
  rows.push(
    [label, 'purge a tag of 1 object', median(one.scanTotal), median(one.scanHeld), median(one.index), median(one.scanTotal) / median(one.index)],
    [label, `purge a tag of ${n / GROUPS} objects (1 %)`, median(group.scanTotal), median(group.scanHeld), median(group.index), median(group.scanTotal) / median(group.index)],
    [label, 'count distinct tags (stats)', median(countScan), median(countScan), median(countIndex), median(countScan) / median(countIndex)],
    [label, 'stats(): the lock, two counters (for scale)', '', '', median(lockedCall), ''],
    [label, 'insert 100 B: 0 / 2 / 32 tags (index)', '', '', `${insert0.toFixed(1)} / ${insert2.toFixed(1)} / ${insert32.toFixed(1)}`, ''],
  );
}
console.log(machineLine());
console.log(`medians of ${REPS} after ${WARMUP} uncounted; scan: every record's tags read under the lock (the store before the index), then each carrier removed; index: removeTag / tagCount (the lock is held for the whole call)`);
printTable(['objects', 'operation', 'scan µs', 'scan lock held µs', 'index µs (lock held)', 'scan / index'], rows);
