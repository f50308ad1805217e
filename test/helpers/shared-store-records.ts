// Test records for the shared store whose bytes can be checked: the body is a pattern drawn from
// the key and a version, and the meta carries the body's length and checksum, so a reader can
// tell a torn, reused or misplaced record from the one that was written.
import type { RecordInit, SharedRecord } from '../../src/cache/shared/store.ts';

/** FNV-1a over bytes. */
export function checksum(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}

/** A record of `bodyBytes` bytes for `key`, version `version`. */
export function makeRecord(key: string, version: number, bodyBytes: number, secondary = ''): RecordInit {
  const body = new Uint8Array(bodyBytes);
  let x = (checksum(new TextEncoder().encode(key)) ^ version) >>> 0 || 1;
  for (let i = 0; i < bodyBytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    body[i] = x & 0xff;
  }
  const keyBytes = new TextEncoder().encode(key);
  const meta = new Uint8Array(12 + keyBytes.length);
  const view = new DataView(meta.buffer);
  view.setUint32(0, bodyBytes);
  view.setUint32(4, checksum(body));
  view.setUint32(8, version);
  meta.set(keyBytes, 12);
  return { meta, body, tags: [`t-${key}`, 'all'], secondary };
}

/** True when the record read back is whole and belongs to `key`. */
export function checkRecord(key: string, rec: SharedRecord): boolean {
  if (rec.meta.length < 12) return false;
  const view = new DataView(rec.meta.buffer, rec.meta.byteOffset, rec.meta.byteLength);
  const metaKey = new TextDecoder().decode(rec.meta.slice(12));
  return metaKey === key && view.getUint32(0) === rec.body.length && view.getUint32(4) === checksum(rec.body)
    && rec.tags.length === 2 && rec.tags[0] === `t-${key}`;
}
