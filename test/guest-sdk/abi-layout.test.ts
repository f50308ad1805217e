// One ABI in three places: the offsets the host uses (src/sandbox/abi-layout.ts), the ones the C
// header asserts (guest/include/tinyedge.h) and the Rust crate asserts (guest/rust/src/sys.rs)
// name the same fields with the same numbers, and they are where a C and a C++ compiler put them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ABI_VERSION, TE_BATCH, TE_FETCH, TE_HEADER, TE_KV, TE_KV_CAS, TE_KV_CAS_ABSENT, TE_REQUEST, TE_REQUEST_LIVE_RESTORE, TE_REQUEST_LIVE_UPDATE, TE_REQUEST_PRESNAPSHOT, TE_REQUEST_WARMUP, TE_RESET_AFTER, TE_RESPONSE, TE_STR } from '../../src/sandbox/abi-layout.ts';
import { hasCompiler, ROOT } from '../helpers/guests.ts';

type Layout = Record<string, Record<string, number>>;

const HOST: Layout = { te_str: TE_STR, te_header: TE_HEADER, te_request: TE_REQUEST, te_response: TE_RESPONSE, te_batch: TE_BATCH, te_fetch: TE_FETCH, te_kv: TE_KV, te_kv_cas: TE_KV_CAS };

/** The `field(type, name, offset)` and `size(type, bytes)` assertions of an SDK source, as a Layout. */
function asserted(source: string, field: string, size: string): Layout {
  const layout: Layout = {};
  for (const [, type, name, n] of source.matchAll(new RegExp(`^${field}\\((\\w+), (\\w+), (\\d+)\\);`, 'gm'))) (layout[type!] ??= {})[name!] = Number(n);
  for (const [, type, n] of source.matchAll(new RegExp(`^${size}\\((\\w+), (\\d+)\\);`, 'gm'))) (layout[type!] ??= {}).SIZE = Number(n);
  return layout;
}

/** A C (or C++) program that prints where the compiler put every field the host names. */
function printer(): string {
  const lines = Object.entries(HOST).flatMap(([type, fields]) => Object.keys(fields).map((f) =>
    f === 'SIZE' ? `    printf("${type}.SIZE=%zu\\n", sizeof(${type}));` : `    printf("${type}.${f}=%zu\\n", offsetof(${type}, ${f}));`));
  return `#include <tinyedge.h>\nint main(void) {\n${lines.join('\n')}\n    return 0;\n}\n`;
}

function parsePrinted(out: string): Layout {
  const layout: Layout = {};
  for (const [, type, f, n] of out.matchAll(/^(\w+)\.(\w+)=(\d+)$/gm)) (layout[type!] ??= {})[f!] = Number(n);
  return layout;
}

describe('the ABI layout', () => {
  const header = readFileSync(join(ROOT, 'guest/include/tinyedge.h'), 'utf8');
  const rust = readFileSync(join(ROOT, 'guest/rust/src/sys.rs'), 'utf8');
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tinyedge-abi-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test('the C header asserts every offset and size the host uses, with the same names and numbers', () => {
    assert.deepEqual(asserted(header, 'TE__FIELD', 'TE__SIZE'), HOST);
  });

  test('the Rust crate asserts every offset and size the host uses, with the same names and numbers', () => {
    assert.deepEqual(asserted(rust, 'field!', 'size!'), HOST);
  });

  test('the ABI version and the flags are the same numbers in the host and both SDKs', () => {
    assert.equal(Number(/^#define TE_ABI_VERSION (\d+)$/m.exec(header)?.[1]), ABI_VERSION);
    assert.equal(Number(/^pub const TE_ABI_VERSION: u64 = (\d+);$/m.exec(rust)?.[1]), ABI_VERSION);
    assert.equal(Number(/^#define TE_REQUEST_WARMUP (\d+)u$/m.exec(header)?.[1]), TE_REQUEST_WARMUP);
    assert.equal(Number(/^pub const TE_REQUEST_WARMUP: u32 = (\d+);$/m.exec(rust)?.[1]), TE_REQUEST_WARMUP);
    assert.equal(Number(/^#define TE_KV_CAS_ABSENT (\d+)u$/m.exec(header)?.[1]), TE_KV_CAS_ABSENT);
    assert.equal(Number(/^pub const TE_KV_CAS_ABSENT: u64 = (\d+);$/m.exec(rust)?.[1]), TE_KV_CAS_ABSENT);
    assert.equal(Number(/^#define TE_REQUEST_PRESNAPSHOT (\d+)u$/m.exec(header)?.[1]), TE_REQUEST_PRESNAPSHOT);
    assert.equal(Number(/^pub const TE_REQUEST_PRESNAPSHOT: u32 = (\d+);$/m.exec(rust)?.[1]), TE_REQUEST_PRESNAPSHOT);
    for (const [name, value] of [['TE_REQUEST_LIVE_UPDATE', TE_REQUEST_LIVE_UPDATE], ['TE_REQUEST_LIVE_RESTORE', TE_REQUEST_LIVE_RESTORE]] as const) {
      assert.equal(Number(new RegExp(`^#define ${name} (\\d+)u$`, 'm').exec(header)?.[1]), value, name);
      assert.equal(Number(new RegExp(`^pub const ${name}: u32 = (\\d+);$`, 'm').exec(rust)?.[1]), value, name);
    }
    assert.equal(Number(/^#define TE_RESET_AFTER (\d+)u/m.exec(header)?.[1]), TE_RESET_AFTER);
    assert.equal(Number(/^pub const TE_RESET_AFTER: u32 = (\d+);$/m.exec(rust)?.[1]), TE_RESET_AFTER);
  });

  for (const [compiler, ext, cxx] of [['gcc', 'c', false], ['g++', 'cc', true]] as const) {
    test(`${compiler} lays the structures out where the host reads and writes them`, { skip: hasCompiler('glibc', cxx) ? false : `${compiler} is not installed` }, () => {
      const src = join(dir, `layout.${ext}`);
      const exe = join(dir, `layout-${ext}`);
      writeFileSync(src, printer());
      execFileSync(compiler, ['-O2', '-I', join(ROOT, 'guest/include'), '-o', exe, src]);
      assert.deepEqual(parsePrinted(execFileSync(exe, { encoding: 'utf8' })), HOST);
    });
  }
});
