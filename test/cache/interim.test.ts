// Interim responses (RFC 9110 §15.2, RFC 8297): an origin's 102 and 103 reach the client whose
// request caused the fetch, ahead of the final answer, and are never stored or replayed on hits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request } from 'undici';
import { startOrigin, startProxy } from './helpers.ts';

type Interim = { status: number; headers: Record<string, string | string[]> };

/** One request through undici, with the interim answers it saw. */
async function fetchWithInterim(url: string, method = 'GET'): Promise<{ status: number; xCache: unknown; body: string; interim: Interim[] }> {
  const interim: Interim[] = [];
  const res = await request(url, { method, onInfo: ({ statusCode, headers }) => interim.push({ status: statusCode, headers: headers as Interim['headers'] }) });
  return { status: res.statusCode, xCache: res.headers['x-cache'], body: await res.body.text(), interim };
}

const LINK = '</styles.css>; rel=preload; as=style';

test('forwards 102 and 103 to the client of a miss and of a pass, and stores only the final answer', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeProcessing();
    res.writeEarlyHints({ link: LINK, 'x-my-header': 'test' });
    res.writeHead(200, { 'cache-control': 'max-age=100', 'content-length': '5' });
    res.end('final');
  });
  const proxy = await startProxy(origin, { defaultGraceSec: 0 });
  const miss = await fetchWithInterim(`${proxy.url}/page`);
  assert.deepEqual(miss.interim.map((i) => i.status), [102, 103]);
  assert.equal(miss.interim[1]!.headers.link, LINK);
  assert.equal(miss.interim[1]!.headers['x-my-header'], 'test');
  assert.deepEqual([miss.status, miss.xCache, miss.body], [200, 'MISS', 'final']);

  const hit = await fetchWithInterim(`${proxy.url}/page`);
  assert.deepEqual([hit.status, hit.xCache, hit.body, hit.interim.length], [200, 'HIT', 'final', 0]);
  assert.equal(origin.hits, 1);

  const pass = await fetchWithInterim(`${proxy.url}/form`, 'POST');
  assert.deepEqual(pass.interim.map((i) => i.status), [102, 103]);
  assert.deepEqual([pass.status, pass.xCache], [200, 'PASS']);
  await proxy.close();
  await origin.close();
});

test('sends no interim answer to an HTTP/1.0 client', async () => {
  const origin = await startOrigin((_req, res) => {
    res.writeEarlyHints({ link: LINK });
    res.writeHead(200, { 'cache-control': 'max-age=100', 'content-length': '2' });
    res.end('ok');
  });
  const proxy = await startProxy(origin);
  const { hostname, port } = new URL(proxy.url);
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(`GET /old HTTP/1.0\r\nHost: ${hostname}\r\n\r\n`));
    let text = '';
    socket.on('data', (chunk) => { text += chunk.toString('latin1'); });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
  assert.match(raw, /^HTTP\/1\.1 200 /);
  assert.doesNotMatch(raw, / 103 /);
  assert.equal(origin.hits, 1);
  await proxy.close();
  await origin.close();
});
