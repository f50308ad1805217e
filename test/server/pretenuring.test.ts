// The server turns V8's allocation-site pretenuring off for its process (src/server/pretenuring.ts),
// unless node's command line chose. Seen through V8's own trace: a workload whose objects all
// survive their scavenges at one site runs in a child process, and V8 prints each site it weighs
// for pretenuring at a collection (`pretenuring: AllocationSite(…)`), or none when pretenuring is
// off. (Whether it then tenures the site varies from run to run; that it weighs it does not.)
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/guests.ts';

/** Objects from one site, all alive at every scavenge: what V8 weighs for pretenuring. */
const WORKLOAD = `
function make(i) { return { i, next: null, tag: 'x' }; }
const keep = [];
for (let i = 0; i < 2000000; i++) keep.push(make(i));`;

const dir = mkdtempSync(join(tmpdir(), 'tinyedge-pretenuring-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** What V8 prints once the setup is done. */
const MARK = '-- the workload starts --';

/**
 * Runs `setup` then the workload in a child node (with `flags`); how many times V8 weighed a site
 * during the workload.
 */
function weighed(setup: string, flags: string[] = []): number {
  // A file, not `-e`: the server's threads inherit node's flags, and `--input-type` is not theirs.
  const script = join(dir, `${randomUUID()}.mjs`);
  writeFileSync(script, `${setup}\nprocess.stdout.write(${JSON.stringify(`${MARK}\n`)});\n${WORKLOAD}\nprocess.exit(0);\n`);
  // V8 prints its trace through C's stdout, which a pipe makes fully buffered: line by line (stdbuf)
  // it keeps its order with the mark, which node writes to the pipe at once.
  const r = spawnSync('stdbuf', ['-oL', process.execPath, '--import', 'tsx', '--trace-pretenuring-statistics', ...flags, script], { encoding: 'utf8', cwd: ROOT });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const from = lines.indexOf(MARK);
  assert.ok(from >= 0, r.stdout);
  return lines.slice(from).filter((line) => line.includes('pretenuring: AllocationSite(')).length;
}

const pretenuring = JSON.stringify(join(ROOT, 'src/server/pretenuring.ts'));

describe('pretenuring', () => {
  test('V8 weighs the workload\'s site when nothing turns pretenuring off', () => {
    assert.ok(weighed('') > 0);
  });

  test('turnOffPretenuring: V8 weighs nothing after it', () => {
    assert.equal(weighed(`const { turnOffPretenuring } = await import(${pretenuring}); turnOffPretenuring();`), 0);
  });

  test("node's command line wins: --allocation-site-pretenuring keeps it on", () => {
    assert.ok(weighed(`const { turnOffPretenuring } = await import(${pretenuring}); turnOffPretenuring();`, ['--allocation-site-pretenuring']) > 0);
  });

  test('a started server has turned it off', () => {
    const config = `server: {}\ntenants:\n  - { name: site, hosts: [a.test], token: site-token-0123456789, origins: [{ name: default, url: "http://127.0.0.1:9" }] }\n`;
    const setup = `
      const { parseConfig, startServer } = await import(${JSON.stringify(join(ROOT, 'src/index.ts'))});
      const server = await startServer({ config: parseConfig(${JSON.stringify(config)}, { file: 'inline.yaml' }) },
        { listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } });
      await server.close();`;
    assert.equal(weighed(setup), 0);
  });
});
