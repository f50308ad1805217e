// Reading a whole request or response body into memory, with a size limit: the one place the
// server buffers bodies (program requests, sub-request answers, admin uploads).
import type { Readable } from 'node:stream';

export interface ReadLimitedOptions {
  /**
   * Past the limit, read the rest and throw it away instead of destroying the stream. For a
   * request body: destroying it would reset the client's connection, so the answer saying why
   * (a 413) would never arrive. The front's request deadline bounds how long that reading lasts.
   */
  discardExcess?: boolean;
}

/**
 * Collects `stream` into one Buffer; past `limit` bytes it stops collecting, destroys the stream
 * (or discards the rest, see `discardExcess`) and rejects with `tooLarge(limit)`. A null stream is
 * an empty body.
 */
export function readLimited(stream: Readable | null, limit: number, tooLarge: (limit: number) => Error, options: ReadLimitedOptions = {}): Promise<Buffer> {
  if (stream === null) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let overflowed = false;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      overflowed = true;
      chunks.length = 0;
      stream.off('data', onData);
      if (options.discardExcess === true) stream.resume();
      else stream.destroy();
      reject(tooLarge(limit));
    };
    stream.on('data', onData);
    stream.on('end', () => {
      if (!overflowed) resolve(Buffer.concat(chunks, size));
    });
    stream.on('error', reject);
  });
}
