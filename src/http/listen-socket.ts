// Listening sockets that several threads can each own on one port, for the shards: each shard
// hands its own socket to `server.listen({ fd })`, and the kernel spreads new connections over
// the sockets by a hash of each connection's addresses and ports. Node 20's `listen` cannot set
// SO_REUSEPORT, so the socket is made through libc, with the options libuv would set besides.
import { lookup } from 'node:dns/promises';
import { getSystemErrorMap } from 'node:util';
import {
  AF_INET, AF_INET6, bind, check, close, getsockname, inetPton, IPPROTO_IPV6, IPV6_V6ONLY, lastErrno, listen,
  setsockopt, SO_REUSEADDR, SO_REUSEPORT, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, socket, SOL_SOCKET,
} from '../kvm/libc.ts';

export interface ListenAddress {
  /** An IPv4 or IPv6 literal, or a name resolved as `server.listen(port, host)` resolves it. */
  readonly host: string;
  /** 0 asks the kernel for a free port. */
  readonly port: number;
}

export interface ListenSocket {
  /** A process-wide descriptor: any thread may hand it to `server.listen({ fd })`, once. */
  readonly fd: number;
  /** The port bound: the kernel's choice when 0 was asked for. */
  readonly port: number;
  /**
   * The address bound, as a literal: open the other shards' sockets on it and `port`, so that a
   * name resolved again cannot put them on another address than the first.
   */
  readonly address: string;
}

/** A failed socket call, shaped like Node's own `listen` errors: `code` is the errno's name. */
export class ListenSocketError extends Error implements NodeJS.ErrnoException {
  readonly code: string;
  /** Negative, as in Node's errors. */
  readonly errno: number;

  constructor(readonly syscall: string, errno: number, readonly address: string, readonly port: number) {
    const [code, message] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, `errno ${errno}`];
    super(`${syscall} ${code}: ${message} ${address}:${port}`);
    this.name = 'ListenSocketError';
    this.code = code;
    this.errno = -errno;
  }
}

/**
 * How many accepted connections may wait for the front to take them. Node's default (511) is
 * overrun by a burst of a thousand clients: the kernel then drops their handshakes, and each
 * retries a second later or is reset. The kernel caps it at `net.core.somaxconn` (4096 by default
 * since Linux 5.4). Node listens again on a socket handed to it, so the front passes it there too.
 */
export const LISTEN_BACKLOG = 4096;
const SOCKADDR_IN_SIZE = 16;
const SOCKADDR_IN6_SIZE = 28;
/** `struct sockaddr_storage`: room for any address getsockname may write. */
const SOCKADDR_STORAGE_SIZE = 128;
const ON = new Uint8Array(new Int32Array([1]).buffer);
const OFF = new Uint8Array(new Int32Array([0]).buffer);

/**
 * Opens a non-blocking, close-on-exec TCP socket with SO_REUSEADDR and SO_REUSEPORT, bound to
 * `address` and listening. Async because a host name is resolved with `dns.lookup`, as Node's
 * `server.listen(port, host)` does (first answer, in the resolver's order); a literal resolves
 * without a query. An IPv6 socket is dual-stack, as libuv makes it: `::` takes IPv4 too.
 * Throws a ListenSocketError naming the call and the address, with nothing left open.
 */
export async function openReusePortSocket(address: ListenAddress, backlog: number = LISTEN_BACKLOG): Promise<ListenSocket> {
  const { port } = address;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${port}`);
  }
  // Node's `listen` reads an empty host as "every address"; dns.lookup would answer null.
  if (address.host === '') throw new TypeError('host must not be empty: name an address, e.g. "::" or "0.0.0.0"');
  const resolved = await lookup(address.host);
  const sockaddr = socketAddress(resolved.family, resolved.address, port);
  const domain = resolved.family === 6 ? AF_INET6 : AF_INET;
  // Reads errno at once: close() after a failed call would overwrite it.
  const must = (call: string, result: number): void => {
    if (result < 0) throw new ListenSocketError(call, lastErrno(), resolved.address, port);
  };
  const fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  must('socket', fd);
  const options: [level: number, name: number, value: Uint8Array][] = [[SOL_SOCKET, SO_REUSEADDR, ON], [SOL_SOCKET, SO_REUSEPORT, ON]];
  if (domain === AF_INET6) options.push([IPPROTO_IPV6, IPV6_V6ONLY, OFF]);
  const bound = new Uint8Array(SOCKADDR_STORAGE_SIZE);
  try {
    for (const [level, name, value] of options) must('setsockopt', setsockopt(fd, level, name, value, value.length));
    must('bind', bind(fd, sockaddr, sockaddr.length));
    must('listen', listen(fd, backlog));
    must('getsockname', getsockname(fd, bound, new Uint32Array([bound.length])));
  } catch (error) {
    close(fd);
    throw error;
  }
  return { fd, port: portOf(bound), address: resolved.address };
}

/** Closes a socket that was never handed to Node (one handed over is closed by `server.close()`). */
export function closeSocket(fd: number): void {
  check('close', close(fd));
}

/** A `struct sockaddr_in` or `sockaddr_in6` for a literal address of `family`. */
function socketAddress(family: number, address: string, port: number): Uint8Array {
  const v6 = family === 6;
  const sockaddr = new Uint8Array(v6 ? SOCKADDR_IN6_SIZE : SOCKADDR_IN_SIZE);
  const view = new DataView(sockaddr.buffer);
  // sa_family is in host order (x86-64: little-endian), the port in network order.
  view.setUint16(0, v6 ? AF_INET6 : AF_INET, true);
  view.setUint16(2, port, false);
  const bytes = new Uint8Array(v6 ? 16 : 4);
  if (inetPton(v6 ? AF_INET6 : AF_INET, address, bytes) !== 1) {
    // A literal Node accepts but inet_pton does not: an IPv6 zone id ("fe80::1%eth0").
    throw new Error(`cannot listen on ${address}: not an IPv${family} address this module can bind (zone ids are not supported)`);
  }
  // sin_addr follows the port; sin6_addr follows the port and the 4-byte sin6_flowinfo.
  sockaddr.set(bytes, v6 ? 8 : 4);
  return sockaddr;
}

/** The port of a `sockaddr_in` or `sockaddr_in6`: both keep it, in network order, at offset 2. */
function portOf(sockaddr: Uint8Array): number {
  return new DataView(sockaddr.buffer).getUint16(2, false);
}
