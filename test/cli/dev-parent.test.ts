// `npx tinyedge dev` killed by its PID: npx runs tinyedge under `sh -c`, and a SIGTERM to npx ends
// npx and that shell but not tinyedge, which went on serving with init as its parent. dev now
// ends with the process that started it. The test starts dev the way npx does (under a shell that
// stays its parent) and kills the shell by its PID.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

/** Whether process `pid` is still running: it exists and is not a zombie waiting to be reaped. */
function running(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // pid (comm) state ...: the name may hold spaces and parentheses, the state follows the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** Whether something accepts TCP connections at `url`. */
function accepts(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** tinyedge's PID, once known: a test that fails or times out must not leave it serving. */
let node = 0;
after(() => {
  if (node > 0 && running(node)) process.kill(node, 'SIGKILL');
});

test('tinyedge dev ends when the shell that started it is killed by its PID, as npx is', { ...needsKvm(), timeout: 60_000 }, async () => {
  // `; true` keeps the shell from exec'ing node: it stays node's parent, as npx's `sh -c` does.
  const shell = spawn('sh', ['-c', `"${process.execPath}" "${BIN}" dev --port 0 "${buildGuest('sdk_headers')}"; true`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const ended = new Promise<void>((resolve) => shell.stderr.on('end', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    shell.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    shell.on('exit', (code) => reject(new Error(`the shell exited with ${code}: ${err}`)));
  });
  node = Number(readFileSync(`/proc/${shell.pid}/task/${shell.pid}/children`, 'utf8').trim());
  assert.ok(node > 0, 'the shell has tinyedge as its child');
  assert.equal(await accepts(url), true);
  assert.equal(running(node), true);

  process.kill(shell.pid!, 'SIGTERM');
  // tinyedge holds the last write end of the pipe: its end is tinyedge's exit.
  await ended;
  // Closing its files is one of the last things an exiting process does, not the last.
  while (running(node)) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await accepts(url), false);
  assert.match(err, /the process that started it \(pid \d+\) has ended; stopping/);
});
