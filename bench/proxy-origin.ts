// The origin behind every proxy in bench/proxy.ts, run as its own process: two cacheable objects
// (`/100b`, `/100k`) and `/__counts`, which says how many times each object was fetched, so the
// benchmark can prove the proxies served cache hits rather than passing requests through.
// Prints one JSON line once listening: `{"port": …, "objects": {"/100b": 100, …}}`.
import { createServer } from 'node:http';

const OBJECTS: Readonly<Record<string, number>> = { '/100b': 100, '/100k': 100 * 1024 };

const bodies = new Map<string, Buffer>(Object.entries(OBJECTS).map(([path, size]) => [path, Buffer.alloc(size, 'x')]));
const counts: Record<string, number> = Object.fromEntries(Object.keys(OBJECTS).map((path) => [path, 0]));
const LAST_MODIFIED = new Date(Date.UTC(2024, 0, 1)).toUTCString();

const server = createServer((req, res) => {
  const path = req.url ?? '/';
  if (path === '/__counts') {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(counts));
    return;
  }
  const body = bodies.get(path);
  if (body === undefined) {
    res.writeHead(404, { 'content-length': '0', 'cache-control': 'no-store' });
    res.end();
    return;
  }
  counts[path] = (counts[path] ?? 0) + 1;
  res.writeHead(200, {
    'content-type': 'application/octet-stream',
    'content-length': String(body.length),
    'cache-control': 'max-age=3600',
    'last-modified': LAST_MODIFIED,
    etag: `"${path.slice(1)}"`,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
});

server.keepAliveTimeout = 60_000; // proxies keep pooled connections; do not make them reconnect
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address !== null && typeof address !== 'string') {
    process.stdout.write(`${JSON.stringify({ port: address.port, objects: OBJECTS })}\n`);
  }
});
process.on('SIGTERM', () => process.exit(0));
