// `tinyedge bench` prints the floor and the per-request percentiles split into call and reset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

test('tinyedge bench reports the floor, call and reset percentiles, and load and instance times', needsKvm(), () => {
  const out = execFileSync(process.execPath, [join(ROOT, 'bin/tinyedge.js'), 'bench', '-n', '200', '--loads', '1', buildGuest('sdk_headers')], { encoding: 'utf8' });
  assert.match(out, /^bare ring-3 exit \(floor\)\s+\d+\.\d$/m);
  for (const row of ['call', 'reset', 'call \\+ reset \\(wall\\)']) assert.match(out, new RegExp(`^${row}\\s+[\\d.]+\\s+[\\d.]+\\s+[\\d.]+\\s+[\\d.]+$`, 'm'));
  assert.match(out, /^load → init → snapshot → first response: [\d.]+ ms \(median\)$/m);
  assert.match(out, /^new instance from the snapshot: [\d.]+ ms \(median of 10, pooled VM\), [\d.]+ ms cold \(new VM\)$/m);
});
