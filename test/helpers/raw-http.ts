// Raw HTTP/1.1 over a plain TCP socket, for tests that must send bytes no HTTP client would send
// and see exactly what comes back and whether the server closed the connection.
import { connect } from 'node:net';

export interface Exchange {
  /** Everything the server sent, decoded as latin1. */
  readonly text: string;
  /** True when the server closed (FIN or reset) before the deadline. */
  readonly closed: boolean;
  /** Milliseconds from connect to close (or to the deadline). */
  readonly elapsedMs: number;
  /** The status line of every response in `text`, in order. */
  readonly statusLines: string[];
}

export interface ExchangeOptions {
  /** Give up waiting for the server to close after this long. */
  readonly deadlineMs?: number;
  /** Send `chunks` one by one with this pause in between (a slow client). */
  readonly pauseMs?: number;
}

/** Connects to 127.0.0.1:port, writes `chunks`, and collects the answer until the server closes. */
export function exchange(port: number, chunks: string | string[], options: ExchangeOptions = {}): Promise<Exchange> {
  const parts = typeof chunks === 'string' ? [chunks] : chunks;
  const deadlineMs = options.deadlineMs ?? 2_000;
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(deadline);
      socket.destroy();
      resolve({ text, closed, elapsedMs: Date.now() - started, statusLines: statusLines(text) });
    };
    const deadline = setTimeout(() => finish(false), deadlineMs);
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.once('connect', () => {
      let i = 0;
      const next = (): void => {
        if (done || i >= parts.length) return;
        socket.write(Buffer.from(parts[i++] as string, 'latin1'));
        if (options.pauseMs !== undefined) setTimeout(next, options.pauseMs);
        else next();
      };
      next();
    });
  });
}

/** Status lines of the responses in a raw byte stream (bodies in these tests never look like one). */
function statusLines(text: string): string[] {
  return [...text.matchAll(/HTTP\/1\.1 \d{3} [^\r\n]*/g)].map((m) => m[0]);
}
