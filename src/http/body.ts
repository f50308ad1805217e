// Reading a whole request or response body into memory, with a size limit: the one place the
// server buffers bodies (program requests, sub-request answers, admin uploads).
import type { Readable } from 'node:stream';

/**
 * Collects `stream` into one Buffer; past `limit` bytes it stops reading, destroys the stream and
 * rejects with `tooLarge(limit)`. A null stream is an empty body.
 */
export function readLimited(stream: Readable | null, limit: number, tooLarge: (limit: number) => Error): Promise<Buffer> {
  if (stream === null) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stream.destroy();
        reject(tooLarge(limit));
      } else chunks.push(chunk);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks, size)));
    stream.on('error', reject);
  });
}
