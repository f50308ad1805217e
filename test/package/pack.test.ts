// The npm package as a user gets it: `npm pack`, installed offline into an empty project, and used
// there without TypeScript tooling or a C compiler: the CLI's `--version`, `run` and `serve` (whose
// demo program ships prebuilt), and the library's entry points with their type declarations.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { buildGuest, ROOT } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const run = promisify(execFile);

/** Packing, installing and every use below together, on a busy 2-core machine. */
const BUDGET_MS = 180_000;

interface Manifest {
  version: string;
  license: string;
  engines: Record<string, string>;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
}

interface LockEntry {
  dev?: boolean;
}

const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Manifest;

/**
 * Writes an empty project that depends on the tarball, with a lockfile holding the run-time part
 * of the repository's own. With it `npm ci --offline` installs from the npm cache alone: after
 * `npm ci` the cache holds every dependency's tarball, but not the registry's package metadata
 * that a plain `npm install <tarball>` would need to resolve version ranges.
 */
function writeProject(dir: string, tarball: string): void {
  const spec = `file:${tarball}`;
  const repoLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: { tinyedge: spec } },
    'node_modules/tinyedge': { version: manifest.version, resolved: spec, license: manifest.license, dependencies: manifest.dependencies, bin: manifest.bin, engines: manifest.engines },
  };
  for (const [path, entry] of Object.entries(repoLock.packages)) if (path !== '' && !entry.dev) packages[path] = entry;
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { tinyedge: spec } }));
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }));
}

describe('the packed package, installed into an empty project', { timeout: BUDGET_MS }, () => {
  const project = mkdtempSync(join(tmpdir(), 'tinyedge-pack-'));
  const installed = join(project, 'node_modules/tinyedge');
  const inProject = { cwd: project, encoding: 'utf8' as const };

  before(async () => {
    assert.ok(existsSync(join(ROOT, 'dist/cli/main.js')), 'dist/ is missing: run `npm run build` first (`npm test` does)');
    // --ignore-scripts: pack the dist/ that `npm test` has just built, rather than build it again.
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: ROOT, encoding: 'utf8' });
    const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
    writeProject(project, filename);
    await run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], inProject);
  });
  after(() => rmSync(project, { recursive: true, force: true }));

  test('the install has the package, its declarations and its run-time dependencies, and no TypeScript tooling', () => {
    for (const name of Object.keys(manifest.dependencies)) assert.ok(existsSync(join(project, 'node_modules', name)), `dependency ${name}`);
    for (const tool of ['tsx', 'typescript', 'esbuild', '@types/node']) assert.equal(existsSync(join(project, 'node_modules', tool)), false, tool);
    for (const [entry, target] of Object.entries(manifest.exports)) {
      if (typeof target === 'string') continue;
      assert.ok(existsSync(join(installed, target.default)), `${entry}: ${target.default}`);
      assert.ok(existsSync(join(installed, target.types)), `${entry}: ${target.types}`);
    }
    assert.ok(existsSync(join(installed, 'dist/demo/hello')), 'the prebuilt demo program');
    assert.ok(existsSync(join(installed, 'guest/include/tinyedge.h')), 'the SDK header');
    // The sources ship only so that source maps and declaration maps lead somewhere; nothing runs them.
    const map = JSON.parse(readFileSync(join(installed, 'dist/index.js.map'), 'utf8')) as { sources: string[] };
    for (const source of map.sources) assert.ok(existsSync(join(installed, 'dist', source)), `source map entry ${source}`);
  });

  test('npx tinyedge --version prints the package version', async () => {
    const { stdout } = await run('npx', ['tinyedge', '--version'], inProject);
    assert.equal(stdout, `${manifest.version}\n`);
  });

  test('the entry points tinyedge, tinyedge/sandbox, tinyedge/cache and tinyedge/node load and expose their main names', async () => {
    const names = async (entry: string): Promise<string[]> => {
      const script = `const m = await import(${JSON.stringify(entry)}); console.log(JSON.stringify(Object.keys(m)))`;
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], inProject);
      return JSON.parse(stdout) as string[];
    };
    const expect: Record<string, string[]> = {
      tinyedge: ['startServer', 'parseConfig', 'ConfigError'],
      'tinyedge/sandbox': ['Kvm', 'Program', 'Instance', 'ProgramPool', 'runProcess', 'SandboxError', 'ProgramError', 'KvmError'],
      'tinyedge/cache': ['Cache', 'Origin', 'Storage'],
      'tinyedge/node': ['createHandler', 'tinyedgePlugin'],
    };
    for (const [entry, want] of Object.entries(expect)) {
      const got = await names(entry);
      for (const name of want) assert.ok(got.includes(name), `${entry} exports ${name} (it exports ${got.join(', ')})`);
    }
  });

  test('a TypeScript project type-checks against the declarations of tinyedge, tinyedge/sandbox and tinyedge/cache', async () => {
    // The repository's compiler and Node types, from outside the project: the install itself has no TypeScript.
    const dir = join(project, 'typed');
    mkdirSync(dir);
    writeFileSync(join(dir, 'use.ts'), [
      "import { Instance, Kvm, Program, SandboxError } from 'tinyedge/sandbox';",
      "import { Cache } from 'tinyedge/cache';",
      "import { startServer, type Config } from 'tinyedge';",
      'export function call(kvm: Kvm, elf: Buffer): number {',
      "  const instance: Instance = new Program(kvm, elf, { mode: 'sdk', name: 'x' }).instance();",
      "  return instance.handle({ method: 'GET', url: '/', headers: [], body: new Uint8Array(0) }).status;",
      '}',
      'export const kinds: unknown[] = [SandboxError, Cache, startServer];',
      'export type Tenants = Config["tenants"];',
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] },
      files: ['use.ts'],
    }));
    await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir], inProject).catch((err: { stdout: string }) => assert.fail(err.stdout));
  });

  test('npx tinyedge run runs a static program with its output and its exit status', needsKvm(), async () => {
    const program = buildGuest('exit_code');
    const child = await run('npx', ['tinyedge', 'run', program, '3', 'return'], inProject).catch((err: { code: number; stdout: string }) => err);
    assert.equal('code' in child ? child.code : 0, 3);
    assert.equal(child.stdout, 'exiting with 3 via return\n');
  });

  test('tinyedge serve answers /hello from the prebuilt demo program with no C compiler on PATH, and stops on SIGTERM', needsKvm(), async () => {
    const noTools = join(project, 'empty-path');
    mkdirSync(noTools);
    const env = { ...process.env, PATH: noTools, TINYEDGE_PORT: '0', TINYEDGE_ADMIN_PORT: '0', TINYEDGE_DEMO_ORIGIN_PORT: '0' };
    const child = spawn(process.execPath, [join(project, 'node_modules/.bin/tinyedge'), 'serve'], { cwd: project, env, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    let err = '';
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.stderr.on('data', (d: Buffer) => {
          err += d.toString();
          const m = /serving 1 tenant\(s\) on (http:\/\/\S+)/.exec(err);
          if (m && err.includes('tinyedge stat')) resolve(m[1] as string);
        });
        child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
      });
      const hello = await request(`${url}/hello`);
      assert.equal(hello.statusCode, 200);
      assert.equal(await hello.body.text(), 'hello, world\n');
      const page = await request(`${url}/`);
      assert.match(await page.body.text(), /Hello from the demo origin/);
      // The demo's operator token is printed, and the dashboard's files ship with the package.
      assert.match(err, /operator token: demo-operator-token-change-me/);
      const admin = /admin API on (http:\/\/\S+)\)/.exec(err)![1]!;
      for (const path of ['/', '/dashboard/app.js', '/dashboard/uPlot.min.js']) {
        const r = await request(`${admin}${path}`);
        assert.equal(r.statusCode, 200, path);
        await r.body.dump();
      }
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, err);
  });

  test('tinyedge serve without its demo program says to build it and exits with status 2', async () => {
    rmSync(join(installed, 'dist/demo/hello'));
    const r = await run(process.execPath, [join(project, 'node_modules/.bin/tinyedge'), 'serve'], inProject).catch((e: { code: number; stderr: string }) => e);
    assert.equal('code' in r ? r.code : 0, 2);
    assert.equal(r.stderr, `tinyedge: the demo program ${join(installed, 'dist/demo/hello')} is missing: run \`npm run build\` in ${installed} first\n`);
  });
});
