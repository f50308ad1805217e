// The layers of src/ import only the layers below them (kvm → vmm → sandbox → cache → http →
// server → node → cli), and nothing above the sandbox reaches into vmm/ or kvm/ (but for the
// imports of libc's bindings listed in PAST_THE_SANDBOX): the sandbox's index is the one surface
// for running programs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '../src');
const LAYERS = ['kvm', 'vmm', 'sandbox', 'cache', 'http', 'server', 'node', 'cli'];
/** Layers that must use `sandbox/index.ts` rather than the sandbox's own modules or those below. */
const ABOVE_SANDBOX = new Set(['cache', 'http', 'server', 'node', 'cli']);
/**
 * Imports past the sandbox that are not about running programs: libc's bindings live in kvm/ (the
 * one module that loads libc), and the shards' listening sockets are made through them, and a
 * live-log reader's connection is handed to the log thread through them.
 */
const PAST_THE_SANDBOX = new Set([
  `${path.join('http', 'listen-socket.ts')} → ${path.join('kvm', 'libc.ts')}`,
  `${path.join('http', 'socket-handoff.ts')} → ${path.join('kvm', 'libc.ts')}`,
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

function layerOf(file: string): string | undefined {
  const rel = path.relative(SRC, file).split(path.sep);
  return rel.length > 1 ? rel[0] : undefined;
}

test('every module imports only from its own layer or the layers below it', () => {
  const wrong: string[] = [];
  let crossings = 0;
  for (const file of sources(SRC)) {
    const from = layerOf(file);
    if (from === undefined) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = path.resolve(path.dirname(file), m[1]!);
      const to = layerOf(target);
      if (to !== from) crossings++;
      const where = `${path.relative(SRC, file)} → ${path.relative(SRC, target)}`;
      if (to === undefined) wrong.push(`${where} (imports the package entry)`);
      else if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) wrong.push(`${where} (imports a layer above)`);
      else if (ABOVE_SANDBOX.has(from) && (to === 'kvm' || to === 'vmm') && !PAST_THE_SANDBOX.has(where)) wrong.push(`${where} (bypasses the sandbox)`);
      else if (ABOVE_SANDBOX.has(from) && to === 'sandbox' && path.relative(SRC, target) !== path.join('sandbox', 'index.ts')) {
        wrong.push(`${where} (the sandbox's surface is sandbox/index.ts)`);
      }
    }
  }
  assert.ok(crossings > 50, `saw only ${crossings} imports across layers: is the pattern still right?`);
  assert.deepEqual(wrong, []);
});
