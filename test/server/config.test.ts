// The config file: a valid one becomes a fully typed Config with every default, a broken one is
// refused with every problem at once as `<file>:<line>: <path>: expected …, got …`. Files live in
// a temp dir so relative program paths and existence checks are real.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, DEFAULT_CONFIG_YAML, defaultConfig, diffConfigs, loadConfig, parseConfig } from '../../src/server/config.ts';
import type { Config } from '../../src/server/config.ts';
import { MIN_GUEST_BYTES, parseSize } from '../../src/server/config/values.ts';
import { MIN_MEMORY_MIB } from '../../src/vmm/x86/layout.ts';
import { buildExample } from '../../guest/build.ts';
import { ROOT } from '../helpers/guests.ts';

const MiB = 1024 * 1024;
let dir: string;
/** The config file's conceptual location: programs live in ../bin relative to it. */
let FILE: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tinyedge-config-'));
  FILE = join(dir, 'conf', 'tinyedge.yaml');
  mkdirSync(join(dir, 'conf'));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'data'));
  // Only the ELF magic is checked at load time; the loader validates the rest when it boots.
  // docs/config.md's annotated example names ../build/examples/hello and ../build/shop/gate.
  mkdirSync(join(dir, 'build/examples'), { recursive: true });
  mkdirSync(join(dir, 'build/shop'));
  for (const file of ['bin/hello', 'bin/hook', 'build/examples/hello', 'build/shop/gate']) {
    writeFileSync(join(dir, file), Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(60)]));
    chmodSync(join(dir, file), 0o755);
  }
  writeFileSync(join(dir, 'bin', 'hello.c'), 'int main(void) { return 0; }\n');
});
after(() => rmSync(dir, { recursive: true, force: true }));

const parse = (text: string, env: Record<string, string> = {}): Config => parseConfig(text, { file: FILE, env });

/** The ConfigError's message lines, with the temp file name shortened to `F`. */
function refused(text: string, env: Record<string, string> = {}): string[] {
  try {
    parse(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.message.split('\n').map((l) => l.replaceAll(FILE, 'F').replaceAll(dir, 'D'));
  }
  assert.fail('the config was accepted');
}

/** One tenant with one program: the smallest useful config. `extra` lines go into the program. */
const minimal = (extra = ''): string => `tenants:
  - name: demo
    hosts: [localhost]
    token: a-long-enough-token
    programs:
      - name: hello
        file: ../bin/hello
        routes: [{ prefix: /hello }]
${extra}`;

const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

describe('parsing', () => {
  test('a valid config parses with every default filled in', () => {
    const config = parse(minimal());
    assert.deepEqual(config, {
      file: FILE,
      server: { listen: { host: '127.0.0.1', port: 8080 }, admin: { host: '127.0.0.1', port: 8081 }, operatorToken: null, accessLog: null, sliceMs: 2, shards: Math.min(256, availableParallelism()), workers: undefined, failureBundles: 20, failureBundleBytes: 4 * 1024 * 1024, liveLogReaders: 64, liveLogReadersPerTenant: 16, cacheMaxBytes: null },
      tenants: [{
        name: 'demo',
        hosts: ['localhost'],
        token: 'a-long-enough-token',
        origins: [],
        routes: [],
        cache: { memoryBytes: 64 * MiB, defaultGraceMs: 10_000, defaultKeepMs: 60_000, maxObjectBytes: 8 * MiB },
        kv: { memoryBytes: 1 * MiB },
        programs: [{
          name: 'hello', file: join(dir, 'bin/hello'), mode: 'sdk', roles: ['generate'],
          routes: [{ prefix: '/hello', methods: ALL_METHODS }],
          memoryBytes: 64 * MiB, timeoutMs: 1000, initTimeoutMs: 10_000, concurrency: 4, queueTimeoutMs: 100,
          maxRequestBytes: 1 * MiB, maxResponseBytes: 8 * MiB, env: {}, allowRead: [], executableMemory: false,
          lifecycle: 'ephemeral', resetAfterRequests: null, resetAboveDirtyBytes: null, warmup: null, maxBatch: 64,
        }],
      }],
      warnings: [],
    });
  });

  test('every key of the full example maps to its typed value', () => {
    const config = parse(`server:
  listen: 0.0.0.0:80
  admin: "[::1]:9000"
  operatorToken: \${OP}
  slice: 5ms
  shards: 4
  failureBundles: 0
  failureBundleMemory: 1MiB
  liveLogReaders: 200
  liveLogReadersPerTenant: 4
  cacheMaxMemory: 2GiB
tenants:
  - name: shop-1
    hosts: [Shop.Example.com:8080, "[::1]", 10.0.0.1]
    token: \${SHOP_TOKEN:-fallback-token-long}
    origins:
      - name: default
        url: http://127.0.0.1:9000/
        connectTimeout: 2s
        firstByteTimeout: 1.5s
        idleTimeout: 2m
        connections: 16
        healthCheck: { path: /health, interval: 500ms }
      - { name: api, url: "https://api.example.com:8443" }
    routes:
      - { prefix: /api/, origin: api, methods: [get, post] }
    cache: { memory: 1GiB, defaultGrace: 0, defaultKeep: 1h, maxObjectSize: 512KiB }
    kv: { memory: 2048 }
    programs:
      - name: hello
        file: ../bin/hello
        mode: sdk
        roles: [generate, recv]
        routes:
          - { prefix: /hello, methods: [GET, HEAD] }
        memory: 128MiB
        timeout: 250
        initTimeout: 30s
        concurrency: "16"
        queueTimeout: 0ms
        maxRequestSize: 64KiB
        maxResponseSize: 1.5MiB
        env: { KEY: value, PORT: 80, DEBUG: true }
        allowRead: [../data, /tmp]
        executableMemory: true
        lifecycle: persistent
        resetAfterRequests: 1000
        resetAboveDirty: 16MiB
        warmup: { requests: 20, path: "/hello?warm=1" }
        maxBatch: 8
`, { OP: 'operator-token-0123456789' });
    assert.deepEqual(config.server, { listen: { host: '0.0.0.0', port: 80 }, admin: { host: '::1', port: 9000 }, operatorToken: 'operator-token-0123456789', accessLog: null, sliceMs: 5, shards: 4, workers: undefined, failureBundles: 0, failureBundleBytes: 1024 * 1024, liveLogReaders: 200, liveLogReadersPerTenant: 4, cacheMaxBytes: 2 * 1024 * MiB });
    const [t] = config.tenants;
    assert.ok(t);
    assert.deepEqual(t.hosts, ['shop.example.com', '[::1]', '10.0.0.1']);
    assert.equal(t.token, 'fallback-token-long');
    assert.deepEqual(t.origins, [
      { name: 'default', url: 'http://127.0.0.1:9000', connectTimeoutMs: 2000, firstByteTimeoutMs: 1500, idleTimeoutMs: 120_000, connections: 16, healthCheck: { path: '/health', intervalMs: 500, timeoutMs: 2000, threshold: 2 } },
      { name: 'api', url: 'https://api.example.com:8443', connectTimeoutMs: 5000, firstByteTimeoutMs: 30_000, idleTimeoutMs: 30_000, connections: 128, healthCheck: null },
    ]);
    assert.deepEqual(t.routes, [{ prefix: '/api/', origin: 'api', methods: ['GET', 'POST'] }]);
    assert.deepEqual(t.cache, { memoryBytes: 1024 * MiB, defaultGraceMs: 0, defaultKeepMs: 3_600_000, maxObjectBytes: 512 * 1024 });
    assert.deepEqual(t.kv, { memoryBytes: 2048 });
    assert.deepEqual(t.programs[0], {
      name: 'hello', file: join(dir, 'bin/hello'), mode: 'sdk', roles: ['generate', 'recv'],
      routes: [{ prefix: '/hello', methods: ['GET', 'HEAD'] }], memoryBytes: 128 * MiB, timeoutMs: 250, initTimeoutMs: 30_000,
      concurrency: 16, queueTimeoutMs: 0, maxRequestBytes: 64 * 1024, maxResponseBytes: 1.5 * MiB,
      env: { KEY: 'value', PORT: '80', DEBUG: 'true' }, allowRead: [join(dir, 'data'), '/tmp'], executableMemory: true,
      lifecycle: 'persistent', resetAfterRequests: 1000, resetAboveDirtyBytes: 16 * MiB, warmup: { requests: 20, path: '/hello?warm=1' }, maxBatch: 8,
    });
    assert.deepEqual(config.warnings, []);
  });

  test('YAML anchors and merge keys share settings between entries', () => {
    const config = parse(`tenants:
  - name: a
    hosts: [a.test]
    token: token-a-0123456789
    origins:
      - &fast { name: default, url: "http://127.0.0.1:9000", connectTimeout: 1s }
      - { <<: *fast, name: b }
`);
    assert.deepEqual(config.tenants[0]?.origins.map((o) => [o.name, o.url, o.connectTimeoutMs]), [['default', 'http://127.0.0.1:9000', 1000], ['b', 'http://127.0.0.1:9000', 1000]]);
  });
});

describe('errors', () => {
  test('a broken config is refused with its error path, expectation and line', () => {
    const text = minimal(`      - name: big
        file: ../bin/hello
        routes: [{ prefix: /big }]
        memory: abc
`);
    try {
      parse(text);
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.file, FILE);
      assert.deepEqual(err.problems, [{ path: 'tenants[0].programs[1].memory', message: 'expected an even number of MiB ≥ 10 (e.g. "64MiB"), got "abc"', line: 12 }]);
      assert.equal(err.message, `${FILE}:12: tenants[0].programs[1].memory: expected an even number of MiB ≥ 10 (e.g. "64MiB"), got "abc"`);
    }
  });

  test('several problems are reported at once, in file order', () => {
    assert.deepEqual(refused(`server:
  listen: 127.0.0.1
  slice: 0
  liveLogReadersPerTenant: 0
tenants:
  - name: Demo
    hosts: []
    token: ""
    cache: { memory: 64MB, defaultGrace: soon }
    programs:
      - name: hello
        memory: 64
        roles: [gen]
  - 3
`), [
      'F:2: server.listen: expected host:port (e.g. "127.0.0.1:8080"), got "127.0.0.1"',
      'F:3: server.slice: expected a positive duration (e.g. "500ms", "10s", "2m", or milliseconds), got 0',
      'F:4: server.liveLogReadersPerTenant: expected an integer from 1 to 10000, got 0',
      'F:6: tenants[0].name: expected a name of 1 to 63 lowercase letters, digits and "-", got "Demo"',
      'F:7: tenants[0].hosts: expected a list of host names with at least one entry, got an empty list',
      'F:8: tenants[0].token: expected a non-empty token of visible ASCII characters, got a 0-character string (not shown)',
      'F:9: tenants[0].cache.memory: expected a size in binary units (KiB, MiB, GiB, TiB), got "64MB" (MB could mean powers of 1000 or of 1024)',
      'F:9: tenants[0].cache.defaultGrace: expected a duration (e.g. "500ms", "10s", "2m", or milliseconds), got "soon"',
      'F:11: tenants[0].programs[0].file: expected a readable static x86-64 executable, got nothing',
      'F:12: tenants[0].programs[0].memory: expected an even number of MiB ≥ 10 (e.g. "64MiB"), got 64 (bytes)',
      'F:13: tenants[0].programs[0].roles[0]: expected one of generate, recv, deliver, got "gen"',
      'F:14: tenants[1]: expected a tenant such as { name: demo, hosts: [localhost], token: … }, got 3',
    ]);
  });

  test('unknown keys are refused one by one, naming the keys allowed there', () => {
    assert.deepEqual(refused(minimal('        timout: 1s\n        concurrency: 2\n        envs: {}\n')), [
      'F:9: tenants[0].programs[0].timout: expected one of the keys name, file, mode, roles, routes, memory, timeout, initTimeout, concurrency, queueTimeout, maxRequestSize, maxResponseSize, env, allowRead, executableMemory, lifecycle, resetAfterRequests, resetAboveDirty, warmup, maxBatch, got "timout"',
      'F:11: tenants[0].programs[0].envs: expected one of the keys name, file, mode, roles, routes, memory, timeout, initTimeout, concurrency, queueTimeout, maxRequestSize, maxResponseSize, env, allowRead, executableMemory, lifecycle, resetAfterRequests, resetAboveDirty, warmup, maxBatch, got "envs"',
    ]);
  });

  test('invalid YAML is refused with the parser\'s message and line', () => {
    assert.deepEqual(refused('tenants:\n  - name: a\n    name: b\n'), ['F:3: invalid YAML: Map keys must be unique']);
    assert.deepEqual(refused('server: { operatorToken: ${OP} }\n'), ['F:1: invalid YAML: Unexpected flow-map-start at node end (inside [ ] or { }, quote a value that uses ${…})', 'F:1: invalid YAML: Unexpected scalar at node end (inside [ ] or { }, quote a value that uses ${…})', 'F:1: invalid YAML: Unexpected flow-map-end token in YAML stream: "}" (inside [ ] or { }, quote a value that uses ${…})']);
    assert.deepEqual(refused(''), ['F: expected a mapping with server and tenants, got an empty value']);
    assert.deepEqual(refused('server: {}\n'), ['F:1: tenants: expected a list of tenants, got nothing']);
  });

  test('a missing or unreadable file is a ConfigError naming the file', () => {
    const missing = join(dir, 'nope.yaml');
    assert.throws(() => loadConfig(missing, {}), (err: unknown) => err instanceof ConfigError && err.message === `${missing}: expected a readable config file, got no such file`);
  });
});

describe('values', () => {
  /** Problems for one cache key set to `value` (or the ok result's cache section). */
  const cacheWith = (key: string, value: string): string[] | Config['tenants'][number]['cache'] => {
    const text = `tenants:\n  - name: a\n    hosts: [a]\n    token: token-a-0123456789\n    cache:\n      ${key}: ${value}\n`;
    try {
      return parse(text).tenants[0]?.cache ?? [];
    } catch (err) {
      return (err as ConfigError).problems.map((p) => p.message);
    }
  };

  test('sizes and durations accept units and refuse garbage', () => {
    const sizes: Array<[string, number]> = [['1048576', MiB], ['"2048"', 2048], ['512KiB', 512 * 1024], ['64MiB', 64 * MiB], ['1GiB', 1024 * MiB], ['100B', 100], ['1.5KiB', 1536], ['"64 MiB"', 64 * MiB]];
    for (const [text, bytes] of sizes) assert.equal((cacheWith('memory', text) as { memoryBytes: number }).memoryBytes, bytes, text);
    const durations: Array<[string, number]> = [['0', 0], ['250', 250], ['500ms', 500], ['10s', 10_000], ['1.5s', 1500], ['2m', 120_000], ['1h', 3_600_000], ['"0s"', 0]];
    for (const [text, ms] of durations) assert.equal((cacheWith('defaultGrace', text) as { defaultGraceMs: number }).defaultGraceMs, ms, text);

    const SIZE = 'expected a positive size (e.g. "512KiB", "64MiB", "1GiB", or bytes), got';
    assert.deepEqual(cacheWith('memory', 'abc'), [`${SIZE} "abc"`]);
    assert.deepEqual(cacheWith('memory', '0'), [`${SIZE} 0 (bytes)`]);
    assert.deepEqual(cacheWith('memory', '-5'), [`${SIZE} -5 (bytes)`]);
    assert.deepEqual(cacheWith('memory', '10PiB'), [`${SIZE} "10PiB"`]);
    assert.deepEqual(cacheWith('memory', '1.1B'), [`${SIZE} "1.1B"`]);
    assert.deepEqual(cacheWith('memory', '[1]'), [`${SIZE} a list`]);
    assert.deepEqual(cacheWith('memory', '64mb'), ['expected a size in binary units (KiB, MiB, GiB, TiB), got "64mb" (mb could mean powers of 1000 or of 1024)']);
    const DURATION = 'expected a duration (e.g. "500ms", "10s", "2m", or milliseconds), got';
    assert.deepEqual(cacheWith('defaultGrace', '10 sec'), [`${DURATION} "10 sec"`]);
    assert.deepEqual(cacheWith('defaultGrace', '-1s'), [`${DURATION} "-1s"`]);
    assert.deepEqual(cacheWith('defaultGrace', '0.5ms'), [`${DURATION} "0.5ms"`]);
    assert.deepEqual(cacheWith('defaultGrace', '1.5'), [`${DURATION} 1.5`]);
    assert.deepEqual(cacheWith('defaultGrace', ''), [`${DURATION} an empty value`]);
    assert.deepEqual(cacheWith('defaultGrace', '30d'), [`${DURATION} "30d"`]);
    assert.deepEqual(cacheWith('defaultGrace', '600h'), ['expected a duration of at most 24 days, got "600h"']);
    assert.deepEqual(cacheWith('maxObjectSize', '128MiB'), ['expected at most cache.memory (64MiB), got 128MiB']);
    // A body is at most one 2 GiB segment of the cache's arena, whatever the tenant's memory.
    const big = (size: string): string[] => {
      try {
        parse(`tenants:\n  - name: a\n    hosts: [a]\n    token: token-a-0123456789\n    cache: { memory: 4GiB, maxObjectSize: ${size} }\n`);
        return [];
      } catch (err) {
        return (err as ConfigError).problems.map((p) => p.message);
      }
    };
    assert.deepEqual(big('3GiB'), ['expected at most 2047MiB (the largest body the cache keeps), got 3GiB']);
    assert.deepEqual(big('2047MiB'), []);
    // A quota below the default object size lowers the default instead of refusing it.
    assert.equal((cacheWith('memory', '1MiB') as { maxObjectBytes: number }).maxObjectBytes, MiB);
  });

  test('timeouts must be positive and guest memory a multiple of 2 MiB from 8 MiB (the smallest the VMM boots) to 4 GiB', () => {
    assert.deepEqual(refused(minimal('        timeout: 0s\n        memory: 6MiB\n      - { name: b, file: ../bin/hello, routes: [{ prefix: /b }], memory: 8GiB }\n')), [
      'F:9: tenants[0].programs[0].timeout: expected a positive duration (e.g. "500ms", "10s", "2m", or milliseconds), got "0s"',
      'F:10: tenants[0].programs[0].memory: expected an even number of MiB ≥ 10 (e.g. "64MiB"), got "6MiB"',
      'F:11: tenants[0].programs[1].memory: expected at most 4GiB, got "8GiB"',
    ]);
    assert.deepEqual(refused(minimal('        memory: 4MiB\n')), ['F:9: tenants[0].programs[0].memory: expected an even number of MiB ≥ 10 (e.g. "64MiB"), got "4MiB"']);
    assert.equal(parse(minimal('        memory: 10MiB\n')).tenants[0]?.programs[0]?.memoryBytes, 10 * MiB);
    assert.deepEqual(refused(minimal('        memory: 8MiB\n')), ['F:9: tenants[0].programs[0].memory: expected an even number of MiB ≥ 10 (e.g. "64MiB"), got "8MiB"']);
    assert.equal(MIN_GUEST_BYTES, MIN_MEMORY_MIB * MiB, "the config's minimum is the VMM's");
  });

  test('sizes: binary units in any case, a bare number is bytes, units that could mean 1000 or 1024 are refused', () => {
    for (const [written, bytes] of [['512KiB', 512 * 1024], ['64mib', 64 * MiB], ['1GIB', 1024 * MiB], ['1TiB', 1024 * 1024 * MiB], ['1.5MiB', 1.5 * MiB], ['100B', 100], ['100', 100], [100, 100]] as const) {
      assert.deepEqual(parseSize(written, true), { ok: true, value: bytes }, String(written));
    }
    for (const written of ['64MB', '64mb', '1GB', '64k', '64M', '2G', '1TB', '1kB']) {
      const r = parseSize(written, true);
      assert.ok(!r.ok && r.expected === 'a size in binary units (KiB, MiB, GiB, TiB)' && /could mean powers of 1000 or of 1024/.test(r.detail ?? ''), written);
    }
    for (const written of ['lots', '-1', '0.5B', '0', '64 MiB and more']) assert.equal(parseSize(written, true).ok, false, written);
  });

  test('origin URLs must be http(s) with a host and no path', () => {
    const origin = (url: string): string[] => refused(`tenants:\n  - name: a\n    hosts: [a]\n    token: token-a-0123456789\n    origins: [{ url: ${JSON.stringify(url)} }]\n`);
    const URL = 'expected an http:// or https:// URL such as "http://127.0.0.1:9000", got';
    assert.deepEqual(origin('ftp://x'), [`F:5: tenants[0].origins[0].url: ${URL} "ftp://x"`]);
    assert.deepEqual(origin('127.0.0.1:9000'), [`F:5: tenants[0].origins[0].url: ${URL} "127.0.0.1:9000"`]);
    assert.deepEqual(origin('http://x/api'), ['F:5: tenants[0].origins[0].url: expected a URL with no path, query or fragment (the request\'s own path is sent), got "http://x/api"']);
    assert.deepEqual(origin('http://u:p@x'), ['F:5: tenants[0].origins[0].url: expected a URL without credentials, got "http://u:p@x"']);
  });

  test('env interpolation fills ${NAME} and refuses an unset one', () => {
    const text = (token: string): string => `tenants:\n  - name: a\n    hosts: [a]\n    token: ${token}\n`;
    const token = (t: string, env: Record<string, string> = {}): string | undefined => parse(text(t), env).tenants[0]?.token;
    assert.equal(token('${T}', { T: 'from-the-environment' }), 'from-the-environment');
    assert.equal(token('pre-${T}-post', { T: 'middle-of-token' }), 'pre-middle-of-token-post');
    assert.equal(token('${T:-default-token-0123}'), 'default-token-0123');
    assert.equal(token('${T:-default-token-0123}', { T: '' }), 'default-token-0123');
    assert.equal(token('${T:-default-token-0123}', { T: 'set-token-0123456789' }), 'set-token-0123456789');
    // `$${` writes a literal `${`; any other `$` is kept.
    assert.equal(token('"price-$${T}-$5-0123456789"', { T: 'x' }), 'price-${T}-$5-0123456789');
    assert.deepEqual(refused(text('${T}')), ['F:4: tenants[0].token: expected environment variable T to be set, got nothing (write ${T:-default} to give a default)']);
    assert.deepEqual(refused(text('"${T"')), ['F:4: tenants[0].token: expected ${NAME} or ${NAME:-default} (NAME of letters, digits and "_"), got "${T"']);
    assert.deepEqual(refused(text('"${9x}"')), ['F:4: tenants[0].token: expected ${NAME} or ${NAME:-default} (NAME of letters, digits and "_"), got "${9x}"']);
    // An interpolated number is a string, which duration keys accept as milliseconds.
    assert.equal(parse(`server: { slice: "\${W}" }\n${text('token-a-0123456789')}`, { W: '6' }).server.sliceMs, 6);
    // Interpolation errors are reported with the rest.
    assert.deepEqual(refused(`server: { slice: "\${W}" }\n${text('${T}')}`), [
      'F:1: server.slice: expected environment variable W to be set, got nothing (write ${W:-default} to give a default)',
      'F:5: tenants[0].token: expected environment variable T to be set, got nothing (write ${T:-default} to give a default)',
    ]);
  });
});

describe('cross checks', () => {
  const tenant = (name: string, hosts: string, token = `token-${name}-0123456789`): string => `  - name: ${name}\n    hosts: ${hosts}\n    token: ${token}\n`;

  test('hosts shared by two tenants are refused', () => {
    assert.deepEqual(refused(`tenants:\n${tenant('a', '[a.test, shared.test]')}${tenant('b', '[Shared.Test:8080, b.test, b.test]')}`), [
      'F:6: tenants[1].hosts[0]: expected a host no other tenant serves, got "shared.test" (already tenants[0].hosts[1], tenant "a")',
      'F:6: tenants[1].hosts[2]: expected each host once, got "b.test" again (also tenants[1].hosts[1])',
    ]);
  });

  test('tenant, origin and program names must be unique', () => {
    assert.deepEqual(refused(`tenants:
${tenant('a', '[a]')}    origins: [{ url: "http://x" }, { url: "http://y" }]
    programs:
      - { name: p, file: ../bin/hello, routes: [{ prefix: /p }] }
      - { name: p, file: ../bin/hello, routes: [{ prefix: /q }] }
${tenant('a', '[b]', 'another-token-0123456789')}`), [
      'F:5: tenants[0].origins[1].name: expected an origin name unique in this tenant, got "default" (also origins[0].name)',
      'F:8: tenants[0].programs[1].name: expected a program name unique in this tenant, got "p" (also programs[0].name)',
      'F:9: tenants[1].name: expected a tenant name no other tenant has, got "a" (also tenants[0].name)',
    ]);
  });

  test('tokens are never shared and never shown; a short one only warns', () => {
    assert.deepEqual(refused(`server: { operatorToken: op-token-0123456789 }\ntenants:\n${tenant('a', '[a]', 'same-token-0123456789')}${tenant('b', '[b]', 'same-token-0123456789')}${tenant('c', '[c]', 'op-token-0123456789')}`), [
      'F:8: tenants[1].token: expected a token no other tenant uses, got the same token as tenants[0].token',
      'F:11: tenants[2].token: expected a token other than server.operatorToken, got the same token',
    ]);
    assert.deepEqual(refused(`tenants:\n${tenant('a', '[a]', '"two words"')}`), ['F:4: tenants[0].token: expected a non-empty token of visible ASCII characters, got a 9-character string (not shown)']);
    const config = parse(`server: { operatorToken: short-op }\ntenants:\n${tenant('a', '[a]', 'short')}`);
    assert.deepEqual(config.warnings, [
      `${FILE}:1: server.operatorToken: shorter than 16 characters (8): use a long random token`,
      `${FILE}:5: tenants[0].token: shorter than 16 characters (5): use a long random token outside of demos`,
    ]);
    assert.equal(config.tenants[0]?.token, 'short');
  });

  test("server.cacheMaxMemory must hold the tenants' cache memory added up", () => {
    const two = `${tenant('a', '[a]')}    cache: { memory: 48MiB }\n${tenant('b', '[b]')}    cache: { memory: 32MiB }\n`;
    assert.deepEqual(refused(`server: { cacheMaxMemory: 64MiB }\ntenants:\n${two}`), [
      'F:1: server.cacheMaxMemory: expected at least the tenants\' cache memory added up (80MiB), got 64MiB',
    ]);
    assert.equal(parse(`server: { cacheMaxMemory: 80MiB }\ntenants:\n${two}`).server.cacheMaxBytes, 80 * MiB);
    assert.equal(parse(`tenants:\n${two}`).server.cacheMaxBytes, null);
  });

  test('server.workers, from before programs ran on the serving thread, is accepted with a warning', () => {
    const config = parse(`server: { workers: 4 }\ntenants:\n${tenant('a', '[a]')}`);
    assert.deepEqual(config.warnings, [
      `${FILE}:1: server.workers: no longer used: programs run on the thread that serves the connection, a slice at a time (server.slice); remove it`,
    ]);
  });

  test('program paths resolve relative to the config file and must exist', () => {
    const program = (file: string, extra = ''): string[] => refused(`tenants:\n${tenant('a', '[a]')}    programs:\n      - { name: p, file: ${file}, routes: [{ prefix: /p }]${extra} }\n`);
    assert.deepEqual(program('hello'), ['F:6: tenants[0].programs[0].file: expected a readable static x86-64 executable, got "hello" (D/conf/hello: no such file or directory)']);
    assert.deepEqual(program('../bin'), ['F:6: tenants[0].programs[0].file: expected a readable static x86-64 executable, got "../bin" (D/bin is not a regular file)']);
    assert.deepEqual(program('../bin/hello.c'), ['F:6: tenants[0].programs[0].file: expected a readable static x86-64 executable, got "../bin/hello.c" (D/bin/hello.c is not an ELF file)']);
    assert.deepEqual(program('../bin/hello', ', allowRead: [../nowhere, ../bin/hello]'), [
      'F:6: tenants[0].programs[0].allowRead[0]: expected an existing directory, got "../nowhere" (D/nowhere: no such file or directory)',
      'F:6: tenants[0].programs[0].allowRead[1]: expected an existing directory, got "../bin/hello" (D/bin/hello is not a directory)',
    ]);
    assert.deepEqual(program('../bin/hello', ', executableMemory: "yes"'), ['F:6: tenants[0].programs[0].executableMemory: expected true or false, got "yes"']);
    const ok = parse(`tenants:\n${tenant('a', '[a]')}    programs:\n      - { name: p, file: ${join(dir, 'bin/hello')}, routes: [{ prefix: /p }], allowRead: [.] }\n`);
    assert.equal(ok.tenants[0]?.programs[0]?.file, join(dir, 'bin/hello'));
    assert.deepEqual(ok.tenants[0]?.programs[0]?.allowRead, [join(dir, 'conf')]);
  });

  test('program roles: generate needs routes, hooks take none, one recv and one deliver per tenant, cgi only generates', () => {
    assert.deepEqual(refused(`tenants:
${tenant('a', '[a]')}    programs:
      - { name: gen, file: ../bin/hello }
      - { name: hook, file: ../bin/hook, roles: [recv, deliver], routes: [{ prefix: /h }] }
      - { name: hook2, file: ../bin/hook, roles: [deliver, deliver] }
      - { name: cgi, file: ../bin/hello, mode: cgi, roles: [generate, recv], routes: [{ prefix: /c }] }
`), [
      'F:6: tenants[0].programs[0].routes: expected at least one route for a program with the generate role, got none',
      'F:7: tenants[0].programs[1].routes: expected no routes for a program without the generate role, got 1',
      'F:8: tenants[0].programs[2].roles[0]: expected at most one deliver program per tenant, got a second (also programs[1])',
      'F:8: tenants[0].programs[2].roles[1]: expected each role once, got "deliver" again',
      'F:8: tenants[0].programs[2].roles[1]: expected at most one deliver program per tenant, got a second (also programs[1])',
      'F:9: tenants[0].programs[3].roles: expected only generate for a cgi program (hooks need the SDK), got [generate, recv]',
      'F:9: tenants[0].programs[3].roles[1]: expected at most one recv program per tenant, got a second (also programs[1])',
    ]);
  });

  test('program lifecycles: persistent needs the SDK, and the reset bounds need persistent', () => {
    // Values first (the cross checks run on a config whose values all parse).
    assert.deepEqual(refused(`tenants:
${tenant('a', '[a]')}    programs:
      - { name: p3, file: ../bin/hello, routes: [{ prefix: /3 }], lifecycle: forever, resetAfterRequests: 0 }
      - { name: p4, file: ../bin/hello, routes: [{ prefix: /4 }], lifecycle: persistent, resetAboveDirty: 0 }
`), [
      'F:6: tenants[0].programs[0].lifecycle: expected one of ephemeral, persistent, got "forever"',
      'F:6: tenants[0].programs[0].resetAfterRequests: expected an integer from 1 to 1000000000, got 0',
      'F:7: tenants[0].programs[1].resetAboveDirty: expected a positive size (e.g. "512KiB", "64MiB", "1GiB", or bytes), got 0 (bytes)',
    ]);
    assert.deepEqual(refused(`tenants:
${tenant('a', '[a]')}    programs:
      - { name: p1, file: ../bin/hello, routes: [{ prefix: /1 }], mode: cgi, lifecycle: persistent }
      - { name: p2, file: ../bin/hello, routes: [{ prefix: /2 }], resetAfterRequests: 10, resetAboveDirty: 1MiB }
`), [
      'F:6: tenants[0].programs[0].lifecycle: expected ephemeral for a cgi program (it starts afresh for every request), got "persistent"',
      'F:7: tenants[0].programs[1].resetAfterRequests: expected resetAfterRequests only with lifecycle: persistent (an ephemeral program is reset after every request), got ephemeral',
      'F:7: tenants[0].programs[1].resetAboveDirty: expected resetAboveDirty only with lifecycle: persistent (an ephemeral program is reset after every request), got ephemeral',
    ]);
  });

  test('program warm-ups: a count from 1 to 10000 and a path, for SDK programs', () => {
    assert.deepEqual(refused(`tenants:
${tenant('a', '[a]')}    programs:
      - { name: p1, file: ../bin/hello, routes: [{ prefix: /1 }], warmup: { requests: 0 } }
      - { name: p2, file: ../bin/hello, routes: [{ prefix: /2 }], warmup: { requests: 3, path: nope } }
      - { name: p3, file: ../bin/hello, routes: [{ prefix: /3 }], warmup: { requests: 3, paths: /x } }
      - { name: p4, file: ../bin/hello, routes: [{ prefix: /4 }], warmup: 5 }
`), [
      'F:6: tenants[0].programs[0].warmup.requests: expected an integer from 1 to 10000, got 0',
      'F:7: tenants[0].programs[1].warmup.path: expected a path starting with "/" (a query may follow), got "nope"',
      'F:8: tenants[0].programs[2].warmup.paths: expected one of the keys requests, path, got "paths"',
      'F:9: tenants[0].programs[3].warmup: expected a warm-up such as { requests: 10, path: /hello }, got 5',
    ]);
    assert.deepEqual(refused(`tenants:
${tenant('a', '[a]')}    programs:
      - { name: p1, file: ../bin/hello, routes: [{ prefix: /1 }], mode: cgi, warmup: { requests: 2 } }
`), ['F:6: tenants[0].programs[0].warmup: expected no warmup for a cgi program (it has no snapshot to warm), got one']);
  });

  test('routes must name existing origins and never claim a prefix and method twice', () => {
    assert.deepEqual(refused(`tenants:
${tenant('a', '[a]')}    origins: [{ url: "http://x" }, { name: api, url: "http://y" }]
    routes:
      - { prefix: /api, origin: api, methods: [GET] }
      - { prefix: /v2, origin: apii }
    programs:
      - { name: p, file: ../bin/hello, routes: [{ prefix: /api, methods: [POST, GET, HEAD] }, { prefix: /p }] }
`), [
      'F:8: tenants[0].routes[1].origin: expected the name of one of this tenant\'s origins (default, api), got "apii"',
      'F:10: tenants[0].programs[0].routes[0].prefix: expected a prefix and methods no other route claims, got "/api" for GET (also tenants[0].routes[0])',
    ]);
    const config = parse(`tenants:\n${tenant('a', '[a]')}    origins: [{ name: api, url: "http://y" }]\n`);
    assert.deepEqual(config.warnings, [`${FILE}:5: tenants[0].origins: no origin is named "default": requests that no route matches will get a 404`]);
  });

  test('listen and admin need their own addresses', () => {
    assert.deepEqual(refused(`server: { listen: "localhost:8080", admin: "LOCALHOST:8080" }\ntenants:\n${tenant('a', '[a]')}`), [
      'F:1: server.admin: expected an address other than server.listen\'s, got the same (localhost:8080)',
    ]);
    // Port 0 lets the system choose, so tests can run both on it.
    assert.deepEqual(parse(`server: { listen: "127.0.0.1:0", admin: "127.0.0.1:0" }\ntenants:\n${tenant('a', '[a]')}`).server.admin, { host: '127.0.0.1', port: 0 });
  });
});

describe('default config and reloads', () => {
  test('the embedded default config is valid', () => {
    buildExample('hello', join(ROOT, 'dist/demo'));
    const config = defaultConfig(ROOT, {});
    assert.deepEqual(config.warnings, []);
    assert.deepEqual(config.server, { listen: { host: '127.0.0.1', port: 8080 }, admin: { host: '127.0.0.1', port: 8081 }, operatorToken: 'demo-operator-token-change-me', accessLog: null, sliceMs: 2, shards: Math.min(256, availableParallelism()), workers: undefined, failureBundles: 20, failureBundleBytes: 4 * 1024 * 1024, liveLogReaders: 64, liveLogReadersPerTenant: 16, cacheMaxBytes: null });
    const [demo] = config.tenants;
    assert.equal(config.tenants.length, 1);
    assert.equal(demo?.name, 'demo');
    assert.deepEqual(demo?.hosts, ['localhost', '127.0.0.1', 'demo.localhost']);
    assert.deepEqual(demo?.origins.map((o) => o.url), ['http://127.0.0.1:9080']);
    assert.deepEqual(demo?.programs.map((p) => [p.name, p.file, p.mode, p.routes]), [['hello', join(ROOT, 'dist/demo/hello'), 'sdk', [{ prefix: '/hello', methods: ['GET', 'HEAD'] }]]]);
    assert.equal(defaultConfig(ROOT, { TINYEDGE_OPERATOR_TOKEN: 'operator-0123456789', TINYEDGE_DEMO_TOKEN: 'demo-0123456789abcdef' }).tenants[0]?.token, 'demo-0123456789abcdef');
    const moved = defaultConfig(ROOT, { TINYEDGE_PORT: '9000', TINYEDGE_ADMIN_PORT: '0', TINYEDGE_DEMO_ORIGIN_PORT: '9001' });
    assert.deepEqual([moved.server.listen.port, moved.server.admin.port, moved.tenants[0]?.origins[0]?.url], [9000, 0, 'http://127.0.0.1:9001']);
    assert.match(DEFAULT_CONFIG_YAML, /^# tinyedge's embedded default/);
  });

  test('the examples in docs/config.md are valid and show the embedded default as it is', () => {
    const doc = readFileSync(join(ROOT, 'docs/config.md'), 'utf8');
    const block = (heading: string): string => {
      const m = new RegExp(`## ${heading}[\\s\\S]*?\`\`\`yaml\n([\\s\\S]*?)\`\`\``).exec(doc);
      assert.ok(m?.[1], heading);
      return m[1];
    };
    const env = { TINYEDGE_OPERATOR_TOKEN: 'operator-0123456789', SHOP_TOKEN: 'shop-0123456789abcdef', BLOG_TOKEN: 'blog-0123456789abcdef' };
    const example = parse(block('Annotated example'), env);
    assert.deepEqual(example.tenants.map((t) => t.name), ['shop', 'blog']);
    assert.deepEqual(example.warnings, []);
    assert.equal(block('The embedded default'), DEFAULT_CONFIG_YAML.replace(/^(#.*\n)+/, ''));
  });

  test('loadConfig reads a file and resolves its paths from the file\'s directory', () => {
    writeFileSync(FILE, minimal());
    const config = loadConfig(FILE, {});
    assert.equal(config.file, FILE);
    assert.equal(config.tenants[0]?.programs[0]?.file, join(dir, 'bin/hello'));
  });

  test('diffConfigs names added, removed and changed tenants, and changed server keys', () => {
    const base = `tenants:\n  - { name: a, hosts: [a], token: token-a-0123456789 }\n  - { name: b, hosts: [b], token: token-b-0123456789 }\n`;
    const next = `server: { slice: 4ms }\ntenants:\n  - { name: a, hosts: [a, a2], token: token-a-0123456789 }\n  - { name: c, hosts: [c], token: token-c-0123456789 }\n`;
    assert.deepEqual(diffConfigs(parse(base), parse(next)), { tenantsAdded: ['c'], tenantsRemoved: ['b'], tenantsChanged: ['a'], serverChanged: ['sliceMs'] });
    assert.deepEqual(diffConfigs(parse(base), parse(base)), { tenantsAdded: [], tenantsRemoved: [], tenantsChanged: [], serverChanged: [] });
  });
});
