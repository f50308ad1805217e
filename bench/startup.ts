// How long the `tinyedge` command takes to start: `--version` and `run` of a static hello, each
// beside `node -e 0` measured in the same run, as medians of repeated runs (ms), with the targets
// of issue 10: `--version` ≤ 1.5 × node, `run` ≤ node + 250 ms.
//   npm run bench:startup [-- --runs 15] [--bin path/to/bin/tinyedge.js]
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { buildGuest, ROOT } from '../test/helpers/guests.ts';
import { machineLine, median, printTable } from './lib.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '15' },
    bin: { type: 'string', default: join(ROOT, 'bin/tinyedge.js') },
  },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs <= 0) throw new Error(`--runs must be a positive integer (got '${values.runs}')`);
const bin = resolve(values.bin);
if (bin === join(ROOT, 'bin/tinyedge.js') && !existsSync(join(ROOT, 'dist/cli/main.js'))) {
  console.error('bench:startup: dist/ is missing; run `npm run build` first');
  process.exit(1);
}
const hello = buildGuest('hello');

interface Case {
  name: string;
  args: string[];
  /** The output that shows the command did its work, so a failing command is never timed. */
  stdout: string;
  times: number[];
}

const cases: Case[] = [
  { name: 'node -e 0', args: ['-e', '0'], stdout: '', times: [] },
  { name: 'tinyedge --version', args: [bin, '--version'], stdout: `${readVersion()}\n`, times: [] },
  { name: 'tinyedge run hello', args: [bin, 'run', hello], stdout: 'hello, world\n', times: [] },
];

/** The version the checkout of `bin` prints: its package.json's. */
function readVersion(): string {
  return (JSON.parse(readFileSync(resolve(bin, '../../package.json'), 'utf8')) as { version: string }).version;
}

function timeOnce(c: Case): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, c.args, { encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0 || r.stdout !== c.stdout) {
    throw new Error(`${c.name} failed (status ${r.status}): ${JSON.stringify(r.stdout)} ${r.stderr}`);
  }
  return ms;
}

// One warm-up each (the page cache, the guest build), then the cases in turn, so that a change in
// the machine's load during the run weighs on all of them alike.
for (const c of cases) timeOnce(c);
for (let i = 0; i < runs; i++) for (const c of cases) c.times.push(timeOnce(c));

const [node, version, run] = cases.map((c) => median(c.times)) as [number, number, number];
console.log(`tinyedge start-up: ${bin}, medians of ${runs} runs — ${machineLine()}`);
const verdict = (ok: boolean): string => (ok ? 'pass' : 'FAIL');
printTable(
  ['command', 'median ms', 'min ms', 'target', 'result'],
  [
    ['node -e 0', node, Math.min(...cases[0]!.times), '', ''],
    ['tinyedge --version', version, Math.min(...cases[1]!.times), `≤ 1.5 × node = ${(1.5 * node).toFixed(0)} ms`, verdict(version <= 1.5 * node)],
    ['tinyedge run hello', run, Math.min(...cases[2]!.times), `≤ node + 250 = ${(node + 250).toFixed(0)} ms`, verdict(run <= node + 250)],
  ],
);
if (version > 1.5 * node || run > node + 250) process.exitCode = 1;
