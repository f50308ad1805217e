// `npm run soak -- [--duration 10m] [--rate 150] [--concurrency 8]`: issue 15's soak. The built
// `tinyedge serve` runs three tenants (cache hits and misses, ranges, conditionals, programs, both
// hooks, the key-value store, sub-requests) for the duration while its origin is restarted, resets
// connections, is slow to first byte and answers 503 by turns, a program is uploaded every 30 s and
// the config reloaded every 45 s (scaled down below 3 minutes). It stops itself and prints the
// criteria (0 failures for keys cached within grace, 0 unexpected 5xx, RSS growth ≤ 10 % after
// warm-up, open fds stable) as a table; the exit status is 1 when one fails. Needs `npm run build`
// (it runs bin/tinyedge.js) and /dev/kvm. What it sends and checks: docs/benchmarks.md, "Soak".
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/server/config/values.ts';
import { buildGuest } from '../test/helpers/guests.ts';
import { machineLine, printTable } from './lib.ts';
import { runSoak, scheduleFor } from './soak/run.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10m' },
    rate: { type: 'string', default: '150' },
    concurrency: { type: 'string', default: '8' },
  },
});

function fail(message: string): never {
  process.stderr.write(`soak: ${message}\n`);
  process.exit(2);
}

const duration = parseDuration(values.duration, true);
if (!duration.ok) fail(`--duration: expected ${duration.expected}, got ${JSON.stringify(values.duration)}`);
if (duration.value < 30_000 || duration.value > 24 * 3600_000) fail('--duration: between 30s and 24h');
const rate = Number(values.rate);
const concurrency = Number(values.concurrency);
if (!Number.isInteger(rate) || rate < 1 || rate > 10_000) fail(`--rate: requests per second, 1 to 10000, got ${JSON.stringify(values.rate)}`);
if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) fail(`--concurrency: 1 to 256, got ${JSON.stringify(values.concurrency)}`);

const schedule = scheduleFor(duration.value);
const programs = { app: buildGuest('soak_app'), persistent: buildGuest('sdk_persistent'), cgi: buildGuest('cgi_env') };
console.log(`# soak: ${machineLine()}`);
console.log(`# ${values.duration} at ${rate} req/s over ${concurrency} connections; warm-up ${schedule.warmupMs / 1000} s, upload every ${schedule.uploadEveryMs / 1000} s, reload every ${schedule.reloadEveryMs / 1000} s, origin phase ${schedule.phaseMs / 1000} s`);
const report = await runSoak({ durationMs: duration.value, rate, concurrency, programs, ...schedule, say: (line) => process.stderr.write(`${line}\n`) });
console.log('');
printTable(['request kind', 'n', 'ok', 'expected 5xx', 'unexpected 5xx', 'failed'], report.kinds.map((k) => [k.kind, String(k.n), String(k.ok), String(k.expected5xx), String(k.unexpected5xx), String(k.failed)]));
console.log('');
printTable(['criterion', 'value', 'limit', 'pass'], report.criteria.map((c) => [c.name, c.value, c.limit, c.pass ? 'yes' : 'NO']));
if (report.examples.length > 0) console.log(`\n${report.examples.join('\n')}`);
process.exitCode = report.pass ? 0 : 1;
