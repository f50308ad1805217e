import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/guests.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

test('tinyedge --help lists every subcommand with a one-line description', () => {
  const out = execFileSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
  assert.match(out, /^Usage: tinyedge/m);
  for (const sub of ['run', 'dev', 'bench', 'proxy']) assert.match(out, new RegExp(`^  ${sub}\\b.+\\S`, 'm'), `missing subcommand ${sub}`);
});

test('an unknown subcommand exits with status 2 and says what is wrong', () => {
  assert.throws(
    () => execFileSync(process.execPath, [BIN, 'frobnicate'], { encoding: 'utf8', stdio: 'pipe' }),
    (err: { status: number; stderr: string }) => err.status === 2 && /unknown command 'frobnicate'/.test(err.stderr),
  );
});
