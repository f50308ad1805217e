// The writers' lock and the readers' sequence counter of the shared store, both single Int32 words
// in shared memory. Writers serialise on the lock (a futex-style mutex: compareExchange, then
// Atomics.wait while it is held); readers never take it and instead check that the sequence
// counter did not move while they walked the index (a seqlock).

/** Lock word states: free, held, held with threads asleep on it (so the holder must notify). */
const FREE = 0;
const HELD = 1;
const CONTENDED = 2;

/** Spins before sleeping: critical sections are a few microseconds, a sleep costs more. */
const SPINS = 100;

/** Takes the lock at `index` in `words`, sleeping (Atomics.wait) while another thread holds it. */
export function lock(words: Int32Array, index: number): void {
  for (let i = 0; i < SPINS; i++) {
    if (Atomics.compareExchange(words, index, FREE, HELD) === FREE) return;
  }
  // From here on the word says CONTENDED, so whoever unlocks wakes a sleeper.
  while (Atomics.exchange(words, index, CONTENDED) !== FREE) Atomics.wait(words, index, CONTENDED);
}

/** Releases the lock at `index`, waking one sleeper if any. */
export function unlock(words: Int32Array, index: number): void {
  if (Atomics.exchange(words, index, FREE) === CONTENDED) Atomics.notify(words, index, 1);
}

/**
 * Opens a write section of the seqlock at `index`: the counter is odd until `seqEnd`. Writers call
 * it with the lock held, so there is only ever one section open.
 */
export function seqBegin(words: Int32Array, index: number): void {
  Atomics.add(words, index, 1);
}

/** Closes the write section: the counter is even again, and different from before the section. */
export function seqEnd(words: Int32Array, index: number): void {
  Atomics.add(words, index, 1);
}
