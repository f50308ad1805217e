// A small deterministic generator for tests that draw random operations: a failing run can be
// replayed from its seed.

/** xorshift32 from `seed`: numbers in [0, 1). */
export function random(seed: number): () => number {
  let x = seed | 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
