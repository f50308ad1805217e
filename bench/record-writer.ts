// What the live log's serialisation costs the log thread a record: `BatchWriter.writeInto`
// (src/server/record-writer.ts) over a batch of 8192 records, against the plain way measured in
// the same run — `JSON.stringify` of each record's logged form, the lines joined and made one
// buffer (the first design). Three batches: one object's fast-path hits (a busy object: runs of
// records alike but for time and total µs), hits of three objects with totals of one to four
// digits (short runs), and full records of program calls (no runs). The output buffer is reused,
// as the log thread's slots are; no socket, no thread: `bench:proxy -- --only serve-log` has those.
//   node --import tsx bench/record-writer.ts [--rounds 9]
// Run it pinned and under the shared lock: flock /tmp/bench.lock taskset -c 0 node --import tsx bench/record-writer.ts
import { BATCH_TIMING, type EncodedBatch, RecordBatcher } from '../src/server/record-batch.ts';
import { BatchWriter } from '../src/server/record-writer.ts';
import { machineLine, median, printTable, quartiles } from './lib.ts';

const RECORDS = 8192;
/** Writes of the batch a round. */
const WRITES = 100;

interface Workload {
  name: string;
  batch: EncodedBatch;
  /** Each record's logged form, as the live log's readers get it. */
  logged: object[];
}

/** A seeded generator: the same records every run. */
function generator(seed: number): (n: number) => number {
  return (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return Math.floor((seed / 2147483648) * n);
  };
}

function workload(name: string, add: (b: RecordBatcher, i: number, startedMs: number) => object): Workload {
  let batch: EncodedBatch | undefined;
  const b = new RecordBatcher((x) => (batch = x), { ...BATCH_TIMING, maxRecords: RECORDS });
  const logged: object[] = [];
  // ~90,000 hits a second: a record every 11 µs.
  for (let i = 0; i < RECORDS; i++) logged.push(add(b, i, 5 + i * 0.011));
  if (batch === undefined) throw new Error(`${name}: the batch did not go at ${RECORDS} records`);
  return { name, batch, logged };
}

function fastHit(b: RecordBatcher, url: string, bytes: number, startedMs: number, totalUs: number): object {
  b.pushFast(0, 'bench', '127.0.0.1:18081', 'GET', url, 200, bytes, startedMs, totalUs);
  return {
    time: Math.round(performance.timeOrigin + startedMs), shard: 0, tenant: 'bench', host: '127.0.0.1:18081', method: 'GET', url, status: 200,
    cache: 'fast-hit', totalUs, bytes,
  };
}

function workloads(): Workload[] {
  const random = generator(7);
  return [
    workload("one object's hits", (b, _, ms) => fastHit(b, '/100b', 100, ms, 20 + random(80))),
    workload("three objects' hits", (b, _, ms) => fastHit(b, `/object/${random(3)}`, 100, ms, [9, 10, 99, 100, 999, 1000][random(6)]! + random(10))),
    workload('program calls', (b, i, ms) => {
      const time = Math.round(performance.timeOrigin + ms);
      const r = {
        time, shard: 0, tenant: 'bench', host: '127.0.0.1:18081', method: 'GET', url: `/api/items/${i % 500}`, status: 200, cache: 'pass' as const,
        backend: 'handler', backendKind: 'program' as const, version: 'a1b2c3d4e5f6', totalUs: 180 + random(300), vmUs: 120 + random(200),
        guestUs: 40 + random(100), vmExits: 3 + random(4), dirtyPages: 10 + random(30), bytes: 2048 + random(4096), originStatus: null, error: null, logs: [],
      };
      b.push(r);
      const { originStatus: _o, error: _e, logs: _l, ...logged } = r;
      return logged;
    }),
  ];
}

function parseArgs(argv: string[]): { rounds: number } {
  if (argv.length === 0) return { rounds: 9 };
  const n = Number(argv[1]);
  if (argv.length !== 2 || argv[0] !== '--rounds' || !Number.isInteger(n) || n < 1) throw new Error(`usage: bench/record-writer.ts [--rounds N]; got '${argv.join(' ')}'`);
  return { rounds: n };
}

/** ns a record of `write`, which writes the whole batch, over WRITES writes. */
function measure(write: () => number): number {
  const start = process.hrtime.bigint();
  for (let k = 0; k < WRITES; k++) write();
  return Number(process.hrtime.bigint() - start) / WRITES / RECORDS;
}

function main(): void {
  const { rounds } = parseArgs(process.argv.slice(2));
  console.log(`The live log's serialisation, ns a record (NDJSON, batches of ${RECORDS}; medians of ${rounds} rounds of ${WRITES} batches, quartiles in brackets)`);
  console.log(`machine: ${machineLine()}`);
  const order = new Int32Array(RECORDS);
  const out = Buffer.allocUnsafeSlow(8 << 20);
  const rows: string[][] = [];
  for (const w of workloads()) {
    const stringify = (): number => Buffer.from(w.logged.map((r) => `${JSON.stringify(r)}\n`).join('')).length;
    const writer = (): number => new BatchWriter(w.batch, order).writeInto(out, 'ndjson');
    // The same bytes, or the comparison means nothing.
    const bytes = out.subarray(0, writer());
    if (!bytes.equals(Buffer.from(w.logged.map((r) => `${JSON.stringify(r)}\n`).join('')))) throw new Error(`${w.name}: BatchWriter's bytes differ from JSON.stringify's`);
    // Warmed up (compiled), then alternating, so that both see the same moments of the machine.
    measure(stringify);
    measure(writer);
    const plain: number[] = [];
    const ours: number[] = [];
    for (let r = 0; r < rounds; r++) {
      plain.push(measure(stringify));
      ours.push(measure(writer));
    }
    const cell = (xs: number[]): string => {
      const [lo, hi] = quartiles(xs);
      return `${median(xs).toFixed(1)} (${lo.toFixed(1)}–${hi.toFixed(1)})`;
    };
    rows.push([w.name, String(Math.round(bytes.length / RECORDS)), cell(plain), cell(ours), `${(median(plain) / median(ours)).toFixed(1)}×`]);
  }
  printTable(['batch', 'bytes a record', 'JSON.stringify, joined', 'BatchWriter', 'faster'], rows);
}

main();
