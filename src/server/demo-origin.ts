// The demo origin `npm start` runs beside the embedded default config: a tiny HTTP server on
// loopback with a cacheable page, an uncacheable one, and a slow one, so the demo tenant has
// something real to cache in front of.
import { createServer, type Server } from 'node:http';

export interface DemoOrigin {
  readonly url: string;
  close(): Promise<void>;
}

const PAGE = `<!doctype html><title>tinyedge demo origin</title>
<h1>Hello from the demo origin</h1>
<p>This page is cacheable for 60 seconds. Ask twice and look at the Age and X-Cache headers.</p>
`;

export function startDemoOrigin(host: string, port: number): Promise<DemoOrigin> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    const url = req.url ?? '/';
    if (url.startsWith('/slow')) {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=10' });
        res.end(`slow response (origin hit ${hits})\n`);
      }, 500);
      return;
    }
    if (url.startsWith('/private')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'private, no-store' });
      res.end(`uncacheable (origin hit ${hits})\n`);
      return;
    }
    if (url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end('ok\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'public, max-age=60', 'x-origin-hits': String(hits) });
    res.end(req.method === 'HEAD' ? undefined : PAGE);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      const actual = typeof addr === 'object' && addr ? addr.port : port;
      resolve({
        url: `http://${host}:${actual}`,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}
