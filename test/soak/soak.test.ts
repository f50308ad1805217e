// Issue 15's soak, 60 seconds of it, in the suite (the harness is bench/soak.ts, which runs as long
// as asked): the built `tinyedge serve` with three tenants under paced load while its origin is
// restarted, resets connections, is slow and answers 503 by turns, with live uploads and reloads
// (admin API and SIGHUP). What it asserts is correctness — no failure for an object cached within
// grace, no 5xx but the documented ones, no lost key-value update, every upload and reload applied,
// memory and fds not growing — never how many requests the machine managed: the load is paced, and
// a slow machine only sends fewer.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak, scheduleFor } from '../../bench/soak/run.ts';
import type { SoakReport } from '../../bench/soak/report.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const DURATION_MS = 60_000;
/**
 * The server's RSS climbs to its plateau over its first two minutes (bench/soak/run.ts,
 * scheduleFor), so in a minute it is still climbing: 8–19 % after the 20-s warm-up here, against
 * ≤ 10 % from minute 2 to minute 10 in the 10-minute run (docs/benchmarks.md, "Soak"). The bound
 * here catches a leak per request of a few tens of KiB (2,400 requests after warm-up: 25 KiB each
 * is 60 MiB, a third of the server), not the climb to the plateau.
 */
const RSS_GROWTH_LIMIT = 0.3;

describe('soak: 60 seconds of traffic, origin faults, uploads and reloads', needsKvm(), () => {
  let report: SoakReport;

  before(async () => {
    const programs = { app: buildGuest('soak_app'), persistent: buildGuest('sdk_persistent'), cgi: buildGuest('cgi_env') };
    report = await runSoak({ durationMs: DURATION_MS, rate: 60, concurrency: 6, programs, rssGrowthLimit: RSS_GROWTH_LIMIT, ...scheduleFor(DURATION_MS) });
  }, { timeout: 5 * 60_000 });

  const criterion = (name: string): void => {
    const c = report.criteria.find((x) => x.name === name);
    assert.ok(c, `no criterion "${name}"`);
    assert.ok(c.pass, `${c.name}: ${c.value} (limit ${c.limit})\n${report.examples.join('\n')}`);
  };

  test('no failed request for a key cached within grace, whatever the origin does', () => {
    criterion('failed requests for keys cached within grace');
  });

  test('no 5xx but a miss or a sub-request while the origin is in trouble', () => {
    criterion('unexpected 5xx');
  });

  test('every answer is the right one: bodies, ranges, 304s, HEAD, hooks, programs', () => {
    criterion('wrong or missing answers (any key)');
    criterion('hook marks missing at the origin');
  });

  test('the origin was in trouble, and requests were served through it', () => {
    criterion('origin fault windows');
    criterion('requests (answered within grace)');
  });

  test('key-value increments are never lost, across uploads and reloads', () => {
    criterion('kv increments repeated (lost updates)');
  });

  test('every live upload and every reload (admin API and SIGHUP) is applied', () => {
    criterion('live uploads (admin API) applied');
    criterion('reloads (admin API and SIGHUP) applied');
  });

  test('RSS grows at most 30 % after warm-up (the plateau comes later), and no fd is left open', () => {
    criterion('RSS after warm-up → end (MiB)');
    criterion('open fds, idle, after warm-up → end');
  });

  test('the server exits 0 on SIGTERM afterwards', () => {
    criterion('server exit on SIGTERM');
  });
});
