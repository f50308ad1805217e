// Standard streams of a request VM: stdin from a buffer (the CGI body), stdout captured up to a
// limit (the CGI response) or, for an SDK program, whose response goes through the ABI, as log
// lines like stderr.
import type { Stdio, StdioFd } from '../vmm/linux/syscalls/context.ts';
import { POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM } from '../vmm/linux/syscalls/poll.ts';

const EFBIG = 27;
const MAX_STDERR = 64 * 1024;

export class CaptureStdio implements Stdio {
  private readonly out: Buffer[] = [];
  private outBytes = 0;
  private readonly err: Buffer[] = [];
  private errBytes = 0;
  private inOffset = 0;
  /** True when the program wrote more to stdout than the limit; the rest was refused. */
  overflowed = false;

  /** `stdoutIsLog`: stdout is logged with stderr, in the order written (and `stdoutLimit` unused). */
  constructor(private readonly stdoutLimit: number, private readonly stdin: Uint8Array = new Uint8Array(0), private readonly stdoutIsLog = false) {}

  /** Never waits: memory always has room, up to the limits. */
  write(fd: 1 | 2, data: Uint8Array, _waitMs: number): number {
    if (fd === 2 || this.stdoutIsLog) {
      const keep = Math.min(data.length, MAX_STDERR - this.errBytes);
      if (keep > 0) {
        this.err.push(Buffer.from(data.subarray(0, keep)));
        this.errBytes += keep;
      }
      return data.length;
    }
    if (this.outBytes + data.length > this.stdoutLimit) {
      this.overflowed = true;
      return -EFBIG;
    }
    this.out.push(Buffer.from(data));
    this.outBytes += data.length;
    return data.length;
  }

  read(into: Uint8Array): number {
    const n = Math.min(into.length, this.stdin.length - this.inOffset);
    into.set(this.stdin.subarray(this.inOffset, this.inOffset + n));
    this.inOffset += n;
    return n;
  }

  /**
   * As pipes would answer: stdin readable while body bytes remain, then hung up (its writer is
   * gone); stdout and stderr always have room. Nothing here changes while the guest waits.
   */
  poll(entries: ReadonlyArray<{ fd: StdioFd; events: number }>): number[] {
    return entries.map((e) => {
      const ready = e.fd !== 0 ? POLLOUT | POLLWRNORM : this.inOffset < this.stdin.length ? POLLIN | POLLRDNORM : POLLHUP;
      return ready & e.events;
    });
  }

  stdout(): Buffer {
    return Buffer.concat(this.out, this.outBytes);
  }

  /** All of stderr (and a logged stdout) as text. */
  text(): string {
    return Buffer.concat(this.err, this.errBytes).toString('utf8');
  }

  /** The log split into lines (the last one even without a newline). */
  lines(): string[] {
    // Most requests log nothing: no buffer, string or array to make for them.
    if (this.errBytes === 0) return [];
    const t = this.text();
    return t === '' ? [] : t.replace(/\n$/, '').split('\n');
  }
}

/**
 * The standard streams of a batch: what the program writes goes to the stream of the request
 * whose handler runs (`index()`), so each request's log holds its own lines.
 */
export class RoutedStdio implements Stdio {
  constructor(private readonly streams: readonly CaptureStdio[], private readonly index: () => number) {}

  write(fd: 1 | 2, data: Uint8Array, waitMs: number): number {
    return this.streams[this.index()]!.write(fd, data, waitMs);
  }

  read(into: Uint8Array): number {
    return this.streams[0]!.read(into);
  }

  poll(entries: ReadonlyArray<{ fd: StdioFd; events: number }>): number[] {
    return this.streams[0]!.poll(entries);
  }
}
