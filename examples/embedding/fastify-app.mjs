// A Fastify app with its own routes and a tenant program, running in tiny KVM VMs, mounted under
// /edge for every method (tinyedge/node, experimental).
//
//   npm run build:guests                                  # builds build/examples/echo (needs gcc)
//   node examples/embedding/fastify-app.mjs build/examples/echo
//   curl -i localhost:3000/edge/items -d '{"a":1}' -H 'content-type: application/json'
//
// Needs /dev/kvm and fastify (npm install fastify). PORT chooses the port (0: any free one); the
// line it prints gives the URL. SIGINT or SIGTERM close the app, which unloads the program; the
// process then ends by itself.
import Fastify from 'fastify';
import { tinyedgePlugin } from 'tinyedge/node';

const program = process.argv[2] ?? 'build/examples/echo';
const port = Number(process.env.PORT ?? 3000);

const app = Fastify({ logger: { level: 'warn' } });
app.get('/', async () => ({ service: 'fastify-app', edge: '/edge/' }));
// Failures are logged through the request's logger; the client sees the status and a fixed text.
await app.register(tinyedgePlugin, { prefix: '/edge', program, timeoutMs: 500, maxRequestBytes: 64 * 1024 });

const url = await app.listen({ port, host: '127.0.0.1' });
console.log(`listening on ${url}`);

const stop = () => void app.close();
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
