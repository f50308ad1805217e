// `tinyedge run --timeout` holds while the program's stdout or stderr is blocked: a program flooding a pipe
// or socket that nobody reads ends at its time limit with exit 124, instead of waiting for a
// reader (forever, here: the test reads nothing until the process has exited).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, constants as fsc } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ROOT, buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');
/** A child still running this long is hung; the test kills it and fails. */
const HANG_MS = 20_000;
/**
 * From the program's first words to the command's exit: 1 s of time limit plus generous slack for a
 * loaded machine, and well short of the 8 s a sleeping reader would once have imposed.
 */
const EXIT_WITHIN_MS = 6_000;

interface Ended {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  /** From the program's "flooding stdout" on stderr to the process's exit. */
  sinceStartMs: number;
}

/**
 * Runs stdout_flood with `--timeout 1000`, the flooded stream `blocked` (never read by this test)
 * and the other one read: stdout flooded by default, stderr with `stream: 'stderr'`.
 */
function flood(program: string, blocked: number | 'pipe', stream: 'stdout' | 'stderr' = 'stdout'): Promise<Ended> {
  return new Promise((resolve, reject) => {
    const stdio: Array<'ignore' | 'pipe' | number> = stream === 'stdout' ? ['ignore', blocked, 'pipe'] : ['ignore', 'pipe', blocked];
    const child = spawn(process.execPath, [BIN, 'run', '--timeout', '1000', program, stream], { stdio });
    const killer = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
    const read = stream === 'stdout' ? child.stderr! : child.stdout!;
    let said = '';
    let started: number | undefined;
    read.on('data', (chunk: Buffer) => {
      said += chunk.toString('utf8');
      if (started === undefined && said.includes(`flooding ${stream}\n`)) started = performance.now();
    });
    child.on('error', reject);
    child.on('exit', (status, signal) => {
      const ended = performance.now();
      clearTimeout(killer);
      (stream === 'stdout' ? child.stdout : child.stderr)?.destroy();
      const done = (): void => resolve({ status, signal, stderr: said, sinceStartMs: ended - (started ?? Infinity) });
      if (read.closed) done();
      else read.once('close', done);
    });
  });
}

function assertTimedOut(run: Ended, said = /^flooding stdout\ntinyedge: [^\n]*time limit[^\n]*\n$/): void {
  assert.equal(run.signal, null, `tinyedge hung with its output blocked and was killed after ${HANG_MS} ms; it said: ${run.stderr}`);
  assert.equal(run.status, 124, `exit status; it said: ${run.stderr}`);
  assert.match(run.stderr, said);
  assert.ok(run.sinceStartMs < EXIT_WITHIN_MS, `exited ${Math.round(run.sinceStartMs)} ms after the program started`);
}

describe('tinyedge run: the time limit holds while stdout is blocked', needsKvm(), () => {
  let program: string;
  let dir: string;
  before(() => {
    program = buildGuest('stdout_flood');
    dir = mkdtempSync(join(tmpdir(), 'tinyedge-stdout-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a program flooding a pipe nobody reads exits 124 at its time limit', async () => {
    const fifo = join(dir, 'stdout.fifo');
    execFileSync('mkfifo', [fifo]);
    // Read and write ends in one description, held open and never read: a pipe that fills and stays full.
    const fd = openSync(fifo, fsc.O_RDWR);
    try {
      assertTimedOut(await flood(program, fd));
    } finally {
      closeSync(fd);
    }
  });

  test('a program flooding a stderr nobody reads exits 124 at its time limit, its last words dropped', async () => {
    const fifo = join(dir, 'stderr.fifo');
    execFileSync('mkfifo', [fifo]);
    const fd = openSync(fifo, fsc.O_RDWR);
    try {
      assertTimedOut(await flood(program, fd, 'stderr'), /^flooding stderr\n$/);
    } finally {
      closeSync(fd);
    }
  });

  test('a program flooding a socket nobody reads exits 124 at its time limit', async () => {
    // Node's 'pipe' is a socketpair; the test attaches no reader, so it fills once Node's buffer is full.
    assertTimedOut(await flood(program, 'pipe'));
  });
});
