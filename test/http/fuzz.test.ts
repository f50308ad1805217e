// HTTP fuzzing in the suite: bench/fuzz-http.ts's fuzzer on a fixed seed and a fixed number of
// cases against `tinyedge serve`, `proxy` and `dev` as child processes over loopback. Whatever
// bytes a client sends, no target dies, prints an unhandled exception, stops answering, grows
// without bound, or answers a follow-up request on the same connection with anything but its own
// answer. First, the verdicts themselves: each must catch what it is for.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CONFIG, formatFinding } from '../../bench/fuzz-http.ts';
import { SEEDS } from '../../bench/fuzz-http/corpus.ts';
import { type Framing, strictFraming } from '../../bench/fuzz-http/frame.ts';
import { buildCase, HttpFuzzer } from '../../bench/fuzz-http/fuzzer.ts';
import { type Conversation, exceptionLines, judge, parseResponses } from '../../bench/fuzz-http/judge.ts';
import { MAX_MUTATED_BYTES } from '../../bench/fuzz-http/mutate.ts';
import { echoBody, escapeTarget, TARGET_NAMES } from '../../bench/fuzz-http/targets.ts';
import { buildGuest } from '../helpers/guests.ts';
import { needsKvm } from '../helpers/kvm.ts';

const SEED = 20261130;
/** About a third per target; the run takes some 10 to 20 seconds on two cores. */
const CASES = 3_000;

const echo = (target: string, extra = ''): string => {
  const body = echoBody(target);
  return `HTTP/1.1 200 OK\r\nX-Echo-Url: ${escapeTarget(target)}\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;
};
const conversation = (received: string, closed = true, framing: Framing = 'boundary'): Conversation => ({
  received: Buffer.from(received, 'latin1'), closed, followUpSent: true, followUpPath: '/f', followUpId: 'case-1', followUpBody: echoBody('/f'), framing,
});
const S400 = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

describe('the HTTP fuzzer\'s verdicts', () => {
  test('a follow-up answered last, as itself, after other answers (one to HEAD, one chunked, an interim 100) is fine', () => {
    const head = `HTTP/1.1 200 OK\r\nX-Echo-Url: /h\r\nContent-Length: 8\r\n\r\n`;
    const chunked = 'HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno!\r\n0\r\n\r\n';
    const v = judge(conversation(`HTTP/1.1 100 Continue\r\n\r\n${head}${chunked}${echo('/f', 'Connection: close\r\n')}`));
    assert.deepEqual(v, { outcome: 'answered', responses: 3, statuses: [200, 404, 200], echoes: ['/h', '', '/f'], problem: null });
    assert.equal(parseResponses(Buffer.from(chunked)).responses[0]?.body.toString(), 'no!');
  });

  test('a refusal that closes, a close after a keep-alive answer, and a server still waiting are not problems', () => {
    assert.deepEqual(judge(conversation(S400)), { outcome: 'refused', responses: 1, statuses: [400], echoes: [''], problem: null });
    assert.equal(judge(conversation(echo('/a'))).outcome, 'dropped');
    assert.deepEqual(judge(conversation('', false, 'unknown')), { outcome: 'unanswered', responses: 0, statuses: [], echoes: [], problem: null });
    assert.equal(judge(conversation(`${echo('/f').slice(0, -3)}`, false)).problem, null, 'still arriving');
    // An unfinished request before it takes the follow-up's head as its own: the client's doing.
    assert.deepEqual(judge(conversation(echo('/a', 'X-Echo-Follow: case-1\r\n'), true, 'unknown')), { outcome: 'merged', responses: 1, statuses: [200], echoes: ['/a'], problem: null });
  });

  test('after complete requests, a follow-up left waiting or merged is a desync; after one that ends the connection, an answer is', () => {
    assert.equal(judge(conversation('', false)).problem, 'the follow-up behind complete requests was left waiting');
    assert.match(judge(conversation(echo('/a', 'X-Echo-Follow: case-1\r\n'))).problem ?? '', /the follow-up's fields reached the backend in a request for \/a/);
    assert.equal(judge(conversation(echo('/f'), true, 'ends')).problem, 'the follow-up was answered after a request that ends the connection');
    assert.equal(judge(conversation(echo('/a', 'Connection: close\r\n'), true, 'ends')).problem, null);
  });

  test('the reference framer says boundary only for plainly complete requests', () => {
    const frame = (s: string): string => strictFraming(Buffer.from(s, 'latin1'));
    const get = 'GET / HTTP/1.1\r\nHost: a\r\n\r\n';
    assert.equal(frame(''), 'boundary');
    assert.equal(frame(get + get), 'boundary');
    assert.equal(frame('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc'), 'boundary');
    assert.equal(frame('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n'), 'boundary');
    for (const ends of ['GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n', 'GET / HTTP/1.0\r\n\r\n', 'GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n', 'CONNECT a:1 HTTP/1.1\r\n\r\n']) {
      assert.equal(frame(`${ends}GET /x HT`), 'ends', ends);
    }
    assert.equal(frame('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'), 'boundary');
    assert.equal(frame('GET / HTTP/1.1\r\nConnection:\xa0close\r\n\r\n'), 'boundary', 'NBSP is not whitespace in HTTP');
    assert.equal(frame('GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n'), 'ends');
    for (const unknown of [get.slice(0, -1), `\r\n${get}`, 'GET / HTTP/1.1\nHost: a\n\n', 'GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n',
      'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc', 'POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabc',
      'POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nContent_Length: 3\r\n\r\nabc', 'GET / HTTP/1.1\r\nExpect: 100-contin\r\nUpgrade: h2c\r\n\r\n', 'GET / HTTP/1.1\r\nX: a\0b\r\n\r\n', 'get / HTTP/1.1\r\n\r\n']) {
      assert.equal(frame(unknown), 'unknown', JSON.stringify(unknown));
    }
  });

  test('the answer to smuggled bytes given to the follow-up is a desync', () => {
    // The follow-up's head was read as fields of a smuggled request left behind complete ones.
    assert.match(judge(conversation(echo('/a') + echo('/x/smuggled', 'X-Echo-Follow: case-1\r\nConnection: close\r\n'))).problem ?? '',
      /the follow-up's fields reached the backend in a request for \/x\/smuggled \(statuses 200 200\)/);
    assert.equal(judge(conversation(echo('/x/smuggled', 'X-Echo-Follow: case-2\r\n'))).problem, null, 'another case\'s follow-up');
    const wrongBody = echo('/f').replace('echo /f', 'echo /x');
    assert.match(judge(conversation(wrongBody)).problem ?? '', /the follow-up's answer is wrong: 200, body "echo \/x\\n"/);
    assert.match(judge(conversation(echo('/f') + echo('/x/smuggled'))).problem ?? '', /not the last/);
    assert.match(judge(conversation(echo('/f') + echo('/f'))).problem ?? '', /not the last/);
    assert.match(judge(conversation(echo('/f').slice(0, -2))).problem ?? '', /incomplete/);
    assert.match(judge({ ...conversation(echo('/f')), followUpSent: false }).problem ?? '', /never sent/);
    assert.match(judge(conversation(S400 + echo('/f'))).problem ?? '', /after one that said Connection: close/);
  });

  test('a malformed response stream is a problem', () => {
    for (const bad of ['HTTP/1.1 200 OK\r\nBad Header\r\n\r\n', 'HTTP/1.1 2000 OK\r\n\r\n', 'GARBAGE\r\n\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx', 'xHTTP']) {
      assert.match(judge(conversation(bad)).problem ?? '', /^malformed response stream/, JSON.stringify(bad));
    }
  });

  test('output lines that report an escaped exception are caught, ordinary log lines are not', () => {
    const output = [
      'tinyedge front: handler failed on GET /x: TypeError: boom',
      '    at Object.handle (file:///x/dist/cache/cache.js:10:5)',
      'Uncaught RangeError: Invalid array length',
      'TypeError [ERR_INVALID_ARG_TYPE]: The "chunk" argument must be of type string',
      '{"level":50,"msg":"request failed","err":{"type":"Error","message":"x","stack":"Error: x\\n    at f"}}',
      'GET /p/a 200 17B call 4083µs reset 1433µs (9 pages)',
      '{"level":30,"name":"tinyedge","msg":"shutting down"}',
      'tinyedge: serving 1 tenant(s) on http://127.0.0.1:4000',
    ].join('\n');
    assert.equal(exceptionLines(output).length, 5);
  });
});

describe('the HTTP fuzzer\'s cases', () => {
  test('a case is a pure function of the seed and its index, and mutated requests stay bounded', () => {
    const a = buildCase(SEED, 7, 20);
    assert.deepEqual(buildCase(SEED, 7, 20), a);
    assert.notDeepEqual(buildCase(SEED + 1, 7, 20).parts, a.parts);
    const names = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const c = buildCase(SEED, i, 20);
      names.add(c.seedName);
      assert.equal(c.target, TARGET_NAMES[i % 3]);
      assert.ok(Buffer.concat(c.parts).length <= MAX_MUTATED_BYTES);
      assert.ok(c.pausesMs.every((p) => p >= 0 && p <= 20));
    }
    assert.equal(names.size, SEEDS.length, 'every seed of the corpus is used');
  });
});

describe('HTTP fuzzing of serve, proxy and dev', needsKvm(), () => {
  let fuzzer: HttpFuzzer;
  before(async () => {
    fuzzer = await HttpFuzzer.start({ ...DEFAULT_CONFIG, seed: SEED, program: buildGuest('http_echo') });
  });
  after(() => fuzzer?.close());

  test(`${CASES} seeded cases: no crash, no exception, no desync, no malformed answer, bounded RSS, still answering`, async () => {
    const done = await fuzzer.run({ count: CASES });
    assert.equal(done, CASES);
    assert.deepEqual(fuzzer.findings.map((f) => formatFinding(f, SEED)), []);
    for (const name of TARGET_NAMES) {
      const s = fuzzer.stats.get(name);
      assert.ok(s !== undefined);
      assert.equal(s.cases, CASES / 3, name);
      // The fuzzer reached past the front: many follow-ups were answered, after all kinds of requests.
      assert.ok(s.outcomes.answered > s.cases / 10, `${name}: only ${s.outcomes.answered} follow-ups answered`);
      assert.ok((s.statuses['2xx'] ?? 0) > 0 && (s.statuses['4xx'] ?? 0) > 0, name);
      assert.ok(s.rssMax > 0 && s.rssMax - s.rssBaseline < DEFAULT_CONFIG.rssGrowthLimit, name);
    }
  });
});
