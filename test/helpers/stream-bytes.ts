// Stream bodies whose every byte says where it belongs: byte q of stream `seed` is a hash of both,
// so a reader that got a byte of another position (a ring overwritten under it, an extent out of
// order) or of another stream can tell.

/** Byte `q` of the body of stream `seed`. */
export function streamByte(seed: number, q: number): number {
  return Math.imul((q + Math.imul(seed, 7919)) | 0, 0x9e3779b1) >>> 24;
}

/** Bytes [`from`, `from + n`) of the body of stream `seed`. */
export function streamBytes(seed: number, from: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = streamByte(seed, from + i);
  return out;
}

/** True when `bytes` are the body of stream `seed` from position `from`. */
export function isStreamAt(seed: number, from: number, bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== streamByte(seed, from + i)) return false;
  return true;
}
