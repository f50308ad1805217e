// The embedding examples, run as a user runs them: each app is started as its own process, imports
// `tinyedge/node` by the package name (resolved to this checkout's sources by from-source.mjs),
// answers over real HTTP with a response a real VM generated, and, told to stop, ends by itself:
// closing the adapter leaves nothing that keeps the process alive.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { request } from 'undici';
import { buildExample } from '../../guest/build.ts';
import { ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const FROM_SOURCE = join(ROOT, 'test/embedding/from-source.mjs');
/** How long an app may take to end after SIGTERM before the test calls it stuck. */
const EXIT_BUDGET_MS = 10_000;

interface RunningApp {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** Starts examples/embedding/<file> on a free port with the echo program; resolves once it listens. */
async function startApp(file: string): Promise<RunningApp> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--import', FROM_SOURCE, join(ROOT, 'examples/embedding', file), buildExample('echo')], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', () => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`${file} exited with ${code} before listening:\n${out}`)));
  });
  return { child, url, output: () => out };
}

/** Sends SIGTERM and resolves with the exit code, or rejects if the process has not ended in time. */
function stop(app: RunningApp): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const stuck = setTimeout(() => {
      app.child.kill('SIGKILL');
      reject(new Error(`still running ${EXIT_BUDGET_MS} ms after SIGTERM:\n${app.output()}`));
    }, EXIT_BUDGET_MS);
    app.child.once('exit', (code) => {
      clearTimeout(stuck);
      resolve(code);
    });
    app.child.kill('SIGTERM');
  });
}

interface Echo {
  method: string;
  url: string;
  body: string;
  requests_since_boot: number;
}

describe('the embedding examples', needsKvm(), () => {
  test('the node:http app answers /api/ from the program in a VM and its own routes itself, then exits when stopped', async () => {
    const app = await startApp('http-app.mjs');
    try {
      const r = await request(`${app.url}/api/items?id=3`, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers['x-echo'], 'tinyedge');
      const got = JSON.parse(await r.body.text()) as Echo;
      assert.deepEqual([got.method, got.url, got.body, got.requests_since_boot], ['POST', '/api/items?id=3', '{"n":1}', 0]);
      const own = await request(`${app.url}/healthz`);
      assert.equal(await own.body.text(), 'ok\n');
    } finally {
      assert.equal(await stop(app), 0);
    }
  });

  test('the Fastify app answers /edge/ from the program in a VM and its own routes itself, then exits when stopped', async () => {
    const app = await startApp('fastify-app.mjs');
    try {
      const r = await request(`${app.url}/edge/items`, { method: 'PUT', body: 'not json at all', headers: { 'content-type': 'application/json' } });
      assert.equal(r.statusCode, 200);
      const got = JSON.parse(await r.body.text()) as Echo;
      assert.deepEqual([got.method, got.url, got.body, got.requests_since_boot], ['PUT', '/edge/items', 'not json at all', 0]);
      const own = await request(`${app.url}/`);
      assert.deepEqual(await own.body.json(), { service: 'fastify-app', edge: '/edge/' });
    } finally {
      assert.equal(await stop(app), 0);
    }
  });
});
