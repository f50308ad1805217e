// A connection handed from the thread whose event loop accepted it to another thread, which then
// owns it alone: the descriptor is duplicated, this thread's socket is closed (libuv takes it out
// of its poll set first; the connection stays open under the duplicate), and the other thread
// opens the duplicate as a socket of its own. Node has no call that lets go of a socket's
// descriptor, so it is read from the socket's handle (`_handle.fd`: Linux, a TCP socket).
import { Socket } from 'node:net';
import { check, close, F_DUPFD_CLOEXEC, fcntlInt } from '../kvm/libc.ts';

/** Why a connection could not be handed over; the socket is as it was. */
export class HandoffError extends Error {}

/**
 * Takes `socket`'s connection from this thread: returns a descriptor of it for another thread's
 * `adoptSocket`, and destroys `socket` here (it sends nothing: the connection stays open). The
 * caller must not have written to `socket` anything still in its buffer. Throws a HandoffError,
 * and leaves the socket alone, when it has no descriptor (closed meanwhile) or none can be made.
 */
export function detachSocket(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (socket.destroyed || typeof fd !== 'number' || fd < 0) throw new HandoffError('the connection is closed');
  if (socket.writableLength > 0) throw new HandoffError('the connection has bytes still to write');
  let copy: number;
  try {
    copy = check('fcntl(F_DUPFD_CLOEXEC)', fcntlInt(fd, F_DUPFD_CLOEXEC, 0));
  } catch (err) {
    throw new HandoffError(`cannot duplicate the connection's descriptor: ${(err as Error).message}`);
  }
  socket.destroy();
  return copy;
}

/** The connection `detachSocket` handed over, as a socket of this thread's. */
export function adoptSocket(fd: number): Socket {
  return new Socket({ fd, readable: true, writable: true });
}

/** Closes a handed-over descriptor nobody will adopt (its thread is gone): the connection ends. */
export function dropDetached(fd: number): void {
  close(fd);
}
