// SDK programs under `tinyedge dev`, over real HTTP: the C++ (tinyedge.hpp) and Rust (guest/rust)
// examples built as `npm run build:guests` builds them, the key-value store's atomic operations,
// and a program built for another ABI version, which dev refuses to start.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'undici';
import { buildExample, toolchainPresent } from '../../guest/build.ts';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');

/** Starts `tinyedge dev` on a free port and resolves with its URL once it listens. */
function startDev(program: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [BIN, 'dev', '--port', '0', program], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve({ url: m[1]!, child });
    });
    child.on('exit', (code) => reject(new Error(`tinyedge dev exited with ${code}: ${err}`)));
  });
}

const EXAMPLES: Array<{ name: string; toolchain: string }> = [
  { name: 'hello_cpp', toolchain: 'g++' },
  { name: 'hello_rust', toolchain: 'cargo' },
];

describe('SDK programs under tinyedge dev', needsKvm(), () => {
  const children: ChildProcess[] = [];
  after(() => {
    for (const c of children) c.kill('SIGTERM');
  });

  for (const example of EXAMPLES) {
    const skip = toolchainPresent(example.toolchain) ? false : `${example.toolchain} is not installed`;
    test(`${example.name} greets the name in its query string over HTTP`, { skip }, async () => {
      const dev = await startDev(buildExample(example.name));
      children.push(dev.child);
      const res = await request(`${dev.url}/?name=edge%20dev`);
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
      assert.equal(await res.body.text(), 'hello, edge dev\n');
      const plain = await request(`${dev.url}/`);
      assert.equal(await plain.body.text(), 'hello, world\n');
    });
  }

  test("dev's in-memory store takes concurrent increments and compare-and-sets as serve's does", async () => {
    const dev = await startDev(buildGuest('sdk_kv_errors'));
    children.push(dev.child);
    const text = async (path: string): Promise<string> => (await request(`${dev.url}${path}`)).body.text();
    const answers = await Promise.all(Array.from({ length: 10 }, () => text('/incr?key=n')));
    assert.deepEqual(answers.map((a) => Number(/^r=0 value=(\d+)\n$/.exec(a)?.[1])).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(await text('/cas?key=n&expect=10&value=x'), 'r=1\n');
    assert.equal(await text('/cas?key=n&expect=10&value=y'), 'r=0\n');
    assert.equal(await text('/incr?key=n'), 'r=-22 value=0\n');
  });

  test('a program built for another ABI version does not start, and the error names both versions', () => {
    const r = spawnSync(process.execPath, [BIN, 'dev', '--port', '0', buildGuest('sdk_abi_future')], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 125);
    assert.match(r.stderr, /^tinyedge: program was built for SDK ABI version 3, but this host accepts versions 1, 2/m);
  });
});
