// A plain node:http app that hands everything under /api/ to a tenant program running in tiny KVM
// VMs (tinyedge/node, experimental), and answers /healthz itself.
//
//   npm run build:guests                                  # builds build/examples/echo (needs gcc)
//   node examples/embedding/http-app.mjs build/examples/echo
//   curl -i localhost:3000/api/items?id=3                 # answered by the program
//
// Needs /dev/kvm. PORT chooses the port (0: any free one); the line it prints gives the URL.
// SIGINT or SIGTERM stop it: the server closes, then the handler, and the process ends by itself.
import { createServer } from 'node:http';
import { createHandler } from 'tinyedge/node';

const program = process.argv[2] ?? 'build/examples/echo';
const port = Number(process.env.PORT ?? 3000);

const edge = await createHandler({
  program,
  timeoutMs: 500, // per request; past it the client gets a 504
  maxRequestBytes: 64 * 1024, // a larger body gets a 413
  concurrency: 4, // VMs answering at once; more requests wait up to queueTimeoutMs, then 503
  logger: { info: (_details, message) => console.log(message), warn: (details, message) => console.error(`${details.status} ${message}`) },
});

const server = createServer((req, res) => {
  if (req.url === '/healthz') {
    res.end('ok\n');
    return;
  }
  if (req.url?.startsWith('/api/')) {
    edge(req, res);
    return;
  }
  res.writeHead(404).end('not found\n');
});

server.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));

const stop = () => server.close(() => void edge.close());
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
