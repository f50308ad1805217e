// What the compiled CLI loads: each subcommand imports its module only when it runs, so
// `--version` and `--help` load neither koffi nor the server, and `run` loads the sandbox but no
// HTTP layer. Seen through an ESM load hook (module.register) that records every module URL the
// process loads; koffi and all of dist/ are loaded as ES modules or through `import`, so each
// passes the hook.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/guests.ts';

const BIN = join(ROOT, 'bin/tinyedge.js');
const dir = mkdtempSync(join(tmpdir(), 'tinyedge-startup-'));
const REGISTER = join(dir, 'register.mjs');

writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, nextLoad) {
  appendFileSync(process.env.TINYEDGE_TRACE, url + '\\n');
  return nextLoad(url, context);
}
`);
writeFileSync(REGISTER, `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`);

interface Traced {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Loaded module URLs under the repository, relative to it, e.g. `dist/cli/main.js`. */
  modules: string[];
}

let runs = 0;
function traced(args: string[]): Traced {
  const trace = join(dir, `trace-${runs++}.txt`);
  writeFileSync(trace, '');
  const r = spawnSync(process.execPath, ['--import', REGISTER, BIN, ...args], { encoding: 'utf8', env: { ...process.env, TINYEDGE_TRACE: trace } });
  const prefix = `file://${ROOT}/`;
  const modules = readFileSync(trace, 'utf8').split('\n').filter((u) => u.startsWith(prefix)).map((u) => u.slice(prefix.length));
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, modules };
}

const koffi = (m: string): boolean => m.startsWith('node_modules/koffi/');
/**
 * The config file's value parsers, a module that imports nothing: the command line parses sizes
 * with them (one parser for both), so every command loads it, and it is no part of the server.
 */
const VALUE_PARSERS = 'dist/server/config/values.js';
const under = (...folders: string[]) => (m: string): boolean => m !== VALUE_PARSERS && folders.some((f) => m.startsWith(`dist/${f}/`));

describe('what the compiled CLI loads', () => {
  before(() => assert.ok(existsSync(join(ROOT, 'dist/cli/main.js')), 'dist/ is missing: run `npm run build` first (`npm test` does)'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('tinyedge --version prints the version in package.json and loads neither koffi nor the server', () => {
    const r = traced(['--version']);
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
    assert.ok(r.modules.includes('dist/cli/main.js'), `the hook saw the CLI: ${r.modules.join(' ')}`);
    assert.deepEqual(r.modules.filter((m) => koffi(m) || under('server', 'sandbox', 'kvm', 'vmm', 'cache', 'http', 'node')(m)), []);
    assert.deepEqual(r.modules.filter((m) => m.startsWith('dist/cli/') && m !== 'dist/cli/main.js' && m !== 'dist/cli/options.js'), []);
  });

  test('tinyedge --help loads no subcommand module', () => {
    const r = traced(['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: tinyedge/);
    assert.deepEqual(r.modules.filter((m) => koffi(m) || (m.startsWith('dist/') && !['dist/cli/main.js', 'dist/cli/options.js', VALUE_PARSERS].includes(m))), []);
  });

  test('a bad option value is refused before the subcommand module loads', () => {
    const r = traced(['run', '--memory', '0', 'prog']);
    assert.equal(r.status, 2);
    assert.deepEqual(r.modules.filter((m) => koffi(m) || m === 'dist/cli/run.js'), []);
  });

  test('tinyedge run loads the sandbox and koffi but neither the server, the cache nor the HTTP front', () => {
    const r = traced(['run', join(dir, 'no-such-program')]);
    assert.equal(r.status, 125);
    assert.match(r.stderr, /^tinyedge: cannot read /);
    assert.ok(r.modules.includes('dist/sandbox/index.js'));
    assert.ok(r.modules.some(koffi));
    assert.deepEqual(r.modules.filter(under('server', 'cache', 'http', 'node')), []);
  });
});
