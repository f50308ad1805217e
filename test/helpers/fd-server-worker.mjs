// A shard in miniature, for test/http/listen-socket.test.ts: a worker thread that serves HTTP on
// the listening socket whose descriptor it is given (descriptors are process-wide), answering
// every request with its thread id so a test can count which thread took each connection.
// Messages: it posts 'listening' (or { error }) once, and closes its server on 'close', posting
// 'closed' once the socket is closed.
import { createServer } from 'node:http';
import { parentPort, threadId, workerData } from 'node:worker_threads';

const server = createServer((_request, response) => response.end(String(threadId)));
server.on('error', (error) => parentPort.postMessage({ error: `${error.code}: ${error.message}` }));
server.listen({ fd: workerData.fd }, () => parentPort.postMessage('listening'));
parentPort.on('message', (message) => {
  if (message !== 'close') return;
  server.close(() => {
    parentPort.postMessage('closed');
    parentPort.close();
  });
  // Keep-alive connections would hold close() open until they time out.
  server.closeAllConnections();
});
