// `npm run conformance -- PATH`: runs the http-tests cache-tests suite (https://github.com/http-tests/cache-tests,
// a local copy at PATH; its code is not part of this project) against `tinyedge serve` (or `proxy`) with
// `defaultGrace` 0 (the setting other caches are measured with; `defaultKeep` stays at its default), and prints the table docs/cache.md
// shows. The suite's origin server and client run from PATH; tinyedge runs from this checkout's dist/.
//   npm run conformance -- ../cache-tests                   # serve, every test
//   npm run conformance -- ../cache-tests --target proxy
//   npm run conformance -- ../cache-tests --id freshness-max-age   # one test, with the suite's dump
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(import.meta.dirname, '..');
const USAGE = 'usage: npm run conformance -- PATH_TO_CACHE_TESTS [--target serve|proxy] [--shards N] [--id TEST_ID] [--json FILE]\n';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    target: { type: 'string', default: 'serve' },
    shards: { type: 'string', default: '2' },
    id: { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

function fail(message: string): never {
  process.stderr.write(`conformance: ${message}\n`);
  process.exit(2);
}

if (values.help) { process.stdout.write(USAGE); process.exit(0); }
if (positionals.length !== 1) fail(`give the path of a local copy of the suite\n${USAGE}`);
const suite = resolve(positionals[0]!);
if (!existsSync(join(suite, 'test-engine', 'cli.mjs')) || !existsSync(join(suite, 'tests', 'index.mjs'))) {
  fail(`${suite} is not a copy of http-tests/cache-tests (no test-engine/cli.mjs or tests/index.mjs); get one with\n  git clone https://github.com/http-tests/cache-tests ${positionals[0]}`);
}
if (!existsSync(join(suite, 'node_modules', 'undici'))) {
  fail(`the suite's dependencies are not installed: run \`npm install --omit=dev\` in ${suite}`);
}
if (values.target !== 'serve' && values.target !== 'proxy') fail(`--target is serve or proxy, not ${values.target}`);
const shards = Number(values.shards);
if (!Number.isSafeInteger(shards) || shards < 1 || shards > 256) fail(`--shards takes 1 to 256, got ${values.shards}`);
if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) fail('dist/ is missing: run `npm run build` first');

/** A port nothing listens on now (the suite's server takes its port as a number, not 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise((done) => server.close(done));
  return port;
}

const children: ChildProcess[] = [];
const work = mkdtempSync(join(tmpdir(), 'tinyedge-conformance-'));
function cleanUp(): void {
  for (const child of children) child.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanUp);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

/** Starts a child and resolves once its output matches `ready`; fails with its output if it exits first. */
function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let output = '';
  return new Promise((done, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (ready.test(output)) done(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}) before it was ready:\n${output}`)));
  });
}

const originPort = await freePort();
const cachePort = await freePort();
await start('the suite\'s origin server', process.execPath, [join(suite, 'test-engine', 'server', 'server.mjs')],
  { npm_config_port: String(originPort), npm_config_protocol: 'http', npm_config_pidfile: join(work, 'origin.pid') }, /Listening on/);

const origin = `http://127.0.0.1:${originPort}`;
const cli = join(ROOT, 'bin', 'tinyedge.js');
if (values.target === 'proxy') {
  await start('tinyedge proxy', process.execPath,
    [cli, 'proxy', '--origin', origin, '--listen', `127.0.0.1:${cachePort}`, '--default-grace', '0'], {}, /listening on/);
} else {
  const config = join(work, 'tinyedge.yaml');
  writeFileSync(config, [
    'server:',
    `  listen: 127.0.0.1:${cachePort}`,
    `  admin: 127.0.0.1:${await freePort()}`,
    `  shards: ${shards}`,
    'tenants:',
    '  - name: conformance',
    '    hosts: [localhost, 127.0.0.1]',
    '    token: conformance-token-not-secret',
    '    origins:',
    `      - { name: default, url: "${origin}" }`,
    '    cache: { defaultGrace: 0 }',
    '',
  ].join('\n'));
  await start('tinyedge serve', process.execPath, [cli, 'serve', '--config', config], {}, /tinyedge: serving/);
}

// The suite's client reads its settings from npm's environment variables, as `npm run cli` sets them.
const base = `http://localhost:${cachePort}`;
const client = spawn(process.execPath, ['--no-warnings', join(suite, 'test-engine', 'cli.mjs')], {
  env: { ...process.env, npm_config_base: base, npm_config_id: values.id ?? '', npm_package_config_id: '' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
children.push(client);
let stdout = '';
client.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
const code = await new Promise<number | null>((done) => client.once('exit', done));
if (code !== 0) fail(`the suite's client exited with ${code}:\n${stdout}`);
if (values.id !== undefined) {
  process.stdout.write(stdout);
  process.exit(0);
}

type SuiteTest = { id: string; name?: string; kind?: string };
type Suite = { name: string; tests: SuiteTest[] };
type ResultType = [string, string, string];
const results = JSON.parse(stdout) as Record<string, unknown>;
if (values.json) writeFileSync(values.json, JSON.stringify(results, null, 2));
const suites = (await import(pathToFileURL(join(suite, 'tests', 'index.mjs')).href) as { default: Suite[] }).default;
const { determineTestResult, resultTypes } = await import(pathToFileURL(join(suite, 'test-engine', 'lib', 'results.mjs')).href) as {
  determineTestResult: (suites: Suite[], id: string, results: Record<string, unknown>) => ResultType;
  resultTypes: Record<string, ResultType>;
};

const labels: Record<string, string> = {
  pass: 'pass', fail: 'required, failed', optional_fail: 'optimal, not met', yes: 'check: yes', no: 'check: no',
  setup_fail: 'setup failed', harness_fail: 'harness failed', dependency_fail: 'dependency failed', retry: 'retried', untested: 'not run',
};
const counts = new Map<string, number>();
const failed: { id: string; name: string; suite: string }[] = [];
for (const s of suites) {
  for (const t of s.tests) {
    const result = determineTestResult(suites, t.id, results);
    const type = Object.keys(resultTypes).find((k) => resultTypes[k] === result) ?? 'untested';
    counts.set(type, (counts.get(type) ?? 0) + 1);
    if (type === 'fail') failed.push({ id: t.id, name: t.name ?? '', suite: s.name });
  }
}
const total = [...counts.values()].reduce((a, b) => a + b, 0);
const rows = Object.keys(labels).filter((k) => counts.has(k)).map((k) => `| ${labels[k]} | ${counts.get(k)} |`);
process.stdout.write([
  `cache-tests against tinyedge ${values.target}${values.target === 'serve' ? ` (${shards} shards)` : ''}, defaultGrace 0: ${total} tests`,
  '',
  '| result | tests |', '|---|---|', ...rows, '',
  ...(failed.length ? ['Required tests failed:', '', '| test | suite | name |', '|---|---|---|',
    ...failed.map((f) => `| \`${f.id}\` | ${f.suite} | ${f.name.replaceAll('|', '\\|')} |`), ''] : []),
].join('\n'));
// Exit now: the origin's and tinyedge's processes (stopped by the exit handler) would keep this one alive.
process.exit(failed.length > 0 ? 1 : 0);
