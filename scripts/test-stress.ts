// `npm run test:stress`: the test suite, several rounds in a row, while busy loops hold CPU cores
// the way a loaded machine would (one of the two cores of the machines the suite must pass on). A
// test that depends on timing it does not control fails here. Stops at the first failing round,
// with its exit status.
//   npm run test:stress                                   # 3 rounds of every test, one core busy
//   npm run test:stress -- test/server/serve.test.ts      # only these files
//   npm run test:stress -- --rounds 5 --busy 2 --no-build test/cli/*.test.ts
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = join(import.meta.dirname, '..');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '3' },
    busy: { type: 'string', default: '1' },
    'no-build': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  process.stdout.write('usage: npm run test:stress -- [--rounds N (3)] [--busy CORES (1)] [--no-build] [TEST_FILE...]\n');
  process.exit(0);
}

function count(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    process.stderr.write(`test:stress: --${name} takes a whole number ≥ ${min}, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}
const rounds = count('rounds', values.rounds, 1);
const busyCores = count('busy', values.busy, 0);

/** Every test file, the ones `npm run test:unit` runs. */
function allTests(): string[] {
  return readdirSync(join(ROOT, 'test'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.test.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
    .sort();
}
const files = positionals.length > 0 ? positionals : allTests();

/** Runs a command with this terminal; resolves with its exit status (128 + n for a signal). */
function run(command: string, args: string[]): Promise<number> {
  const child = spawn(command, args, { cwd: ROOT, stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
}

/**
 * A process that spins on one core until it is killed, or until this script is gone (it looks
 * at its parent every few million turns, so a killed script leaves no spinner behind).
 */
function spinner(): ChildProcess {
  const loop = 'const p = process.ppid; for (let i = 1; ; i++) if (i % 50_000_000 === 0 && process.ppid !== p) process.exit(0);';
  return spawn(process.execPath, ['-e', loop], { stdio: 'ignore' });
}

const spinners: ChildProcess[] = [];
const stopSpinners = (): void => {
  for (const s of spinners) s.kill('SIGKILL');
  spinners.length = 0;
};
process.once('exit', stopSpinners);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopSpinners();
    process.exit(130);
  });
}

if (!values['no-build']) {
  const built = await run('npm', ['run', 'build']);
  if (built !== 0) process.exit(built);
}

for (let i = 0; i < busyCores; i++) spinners.push(spinner());
const say = (line: string): void => void process.stderr.write(`test:stress: ${line}\n`);
say(`${rounds} round(s) of ${files.length} test file(s), ${busyCores} core(s) kept busy`);
const took: string[] = [];
for (let round = 1; round <= rounds; round++) {
  const started = performance.now();
  const status = await run(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files]);
  took.push(`${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (status !== 0) {
    say(`round ${round} of ${rounds} failed (exit status ${status}) after ${took.at(-1)}`);
    stopSpinners();
    process.exit(status);
  }
  say(`round ${round} of ${rounds} passed in ${took.at(-1)}`);
}
stopSpinners();
say(`all ${rounds} round(s) passed (${took.join(', ')})`);
