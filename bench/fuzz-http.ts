// HTTP fuzzing of the three servers (bench/fuzz-http/ has the corpus, mutations, targets and
// verdicts; docs/server.md, "HTTP fuzzing", says what it covers). Runs for as long as asked and
// prints a table per target; exits 1 if anything broke an invariant.
//   npm run fuzz:http -- --seconds 600 [--seed S] [--cases N] [--concurrency C] [--shards N]
//                        [--targets serve,proxy,dev]
//   npm run fuzz:http -- --seed S --case N     replays one case and prints both sides of it
import { parseArgs } from 'node:util';
import { buildGuest } from '../test/helpers/guests.ts';
import { buildCase, type Finding, type FuzzConfig, HttpFuzzer, mib } from './fuzz-http/fuzzer.ts';
import { echoBody, TARGET_NAMES, type TargetName } from './fuzz-http/targets.ts';
import { machineLine, printTable } from './lib.ts';

/** The defaults test/http/fuzz.test.ts runs with too. */
export const DEFAULT_CONFIG: Omit<FuzzConfig, 'program' | 'seed'> = {
  targets: TARGET_NAMES,
  concurrency: 4,
  maxPauseMs: 20,
  deadlineMs: 1_000,
  rssGrowthLimit: 128 * 1024 * 1024,
  warmUpCases: 100,
  shards: 2,
};

function int(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) {
    process.stderr.write(`fuzz-http: --${name} must be a non-negative integer, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return n;
}

function targetList(text: string): TargetName[] {
  const names = text.split(',');
  const unknown = names.filter((n) => !(TARGET_NAMES as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) {
    process.stderr.write(`fuzz-http: --targets takes a comma-separated list of ${TARGET_NAMES.join(', ')}; got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return names as TargetName[];
}

/** A finding as the report prints it. */
export function formatFinding(f: Finding, seed: number): string {
  const replay = f.cases.length > 0 ? `\n  replay: npm run fuzz:http -- --seed ${seed} --case ${f.cases[0]}` : '';
  const request = f.request !== undefined ? `\n  request: ${f.request}` : '';
  return `[${f.target}] ${f.kind} (cases ${f.cases.join(', ') || '-'}): ${f.problem}${request}${replay}`;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' }, seed: { type: 'string' }, cases: { type: 'string' }, case: { type: 'string' },
      concurrency: { type: 'string' }, shards: { type: 'string' }, targets: { type: 'string' },
    },
  });
  const seed = int('seed', values.seed, Date.now() % 1_000_000);
  const config: FuzzConfig = {
    ...DEFAULT_CONFIG, seed, program: buildGuest('http_echo'),
    concurrency: Math.max(1, int('concurrency', values.concurrency, DEFAULT_CONFIG.concurrency)),
    shards: Math.max(1, int('shards', values.shards, DEFAULT_CONFIG.shards)),
    targets: values.targets === undefined ? TARGET_NAMES : targetList(values.targets),
  };
  const fuzzer = await HttpFuzzer.start(config);
  try {
    if (values.case !== undefined) {
      const c = buildCase(seed, int('case', values.case, 0), config.maxPauseMs);
      const verdict = await fuzzer.runCase(c);
      console.log(`case ${c.index} on ${c.target}: seed request ${c.seedName}, ${c.mutations} mutations, ${c.parts.length} writes (pauses ${c.pausesMs.join(',')} ms)`);
      console.log(`sent:      ${JSON.stringify(Buffer.concat(c.parts).toString('latin1'))} (framing: ${c.framing})`);
      console.log(`follow-up: ${JSON.stringify(c.followUp.toString('latin1'))} (expects ${JSON.stringify(echoBody(c.followUpPath))})`);
      console.log(`received:  ${JSON.stringify(verdict.received.toString('latin1').slice(0, 4000))}`);
      console.log(`verdict:   ${verdict.outcome}, statuses ${verdict.statuses.join(' ') || 'none'}${verdict.problem ? `, PROBLEM: ${verdict.problem}` : ''}`);
    } else {
      const seconds = values.seconds === undefined && values.cases === undefined ? 30 : values.seconds === undefined ? undefined : int('seconds', values.seconds, 30);
      const count = values.cases === undefined ? undefined : int('cases', values.cases, 0);
      const started = Date.now();
      let lastReport = started;
      const done = await fuzzer.run({ count, seconds }, (n) => {
        if (Date.now() - lastReport < 30_000) return;
        lastReport = Date.now();
        process.stderr.write(`fuzz-http: ${n} cases in ${((lastReport - started) / 1000).toFixed(0)} s, ${fuzzer.findings.length} findings\n`);
      });
      const elapsed = (Date.now() - started) / 1000;
      console.log(`HTTP fuzzing, seed ${seed}: ${done} cases in ${elapsed.toFixed(0)} s (${(done / elapsed).toFixed(0)}/s), concurrency ${config.concurrency} per target, serve with ${config.shards} shard(s)`);
      console.log(machineLine());
      printTable(['target', 'cases', 'answered', 'refused', 'dropped', 'merged', 'unanswered', '2xx', '4xx', '5xx', 'RSS base', 'RSS max', 'restarts', 'findings'],
        config.targets.map((name) => {
          const s = fuzzer.stats.get(name);
          if (s === undefined) return [name];
          return [name, s.cases, s.outcomes.answered, s.outcomes.refused, s.outcomes.dropped, s.outcomes.merged, s.outcomes.unanswered, s.statuses['2xx'] ?? 0, s.statuses['4xx'] ?? 0, s.statuses['5xx'] ?? 0,
            mib(s.rssBaseline), mib(s.rssMax), s.restarts, fuzzer.findings.filter((f) => f.target === name).length].map(String);
        }));
    }
    for (const f of fuzzer.findings) console.log(`\n${formatFinding(f, seed)}`);
    return fuzzer.findings.length === 0 ? 0 : 1;
  } finally {
    await fuzzer.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main();
