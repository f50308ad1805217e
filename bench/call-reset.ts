// The in-process cost of one hello request in its VM: `Instance.handle` (the call and the reset),
// on whatever CPU this process is pinned to. bench/workerd.ts runs it on the server's core to
// compute the one-core ceiling of `serve`. Prints one JSON line: { "p50Us": …, "n": … }.
//   node --import tsx bench/call-reset.ts [-n 3000]
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { buildExample } from '../guest/build.ts';
import { Kvm, Program } from '../src/sandbox/index.ts';
import { percentile } from './lib.ts';

const { values } = parseArgs({ options: { n: { type: 'string', short: 'n', default: '3000' } } });
const n = Number(values.n);
const kvm = new Kvm();
const program = new Program(kvm, readFileSync(buildExample('hello')), { mode: 'sdk', name: 'hello' });
const instance = program.instance();
const req = { method: 'GET', url: '/', headers: [['Host', 'localhost']] as Array<[string, string]>, body: new Uint8Array(0) };
for (let i = 0; i < n / 10; i++) instance.handle(req);
const times: number[] = [];
for (let i = 0; i < n; i++) {
  const t = performance.now();
  instance.handle(req);
  times.push((performance.now() - t) * 1000);
}
instance.close();
program.close();
kvm.close();
console.log(JSON.stringify({ p50Us: percentile(times.sort((a, b) => a - b), 50), n }));
