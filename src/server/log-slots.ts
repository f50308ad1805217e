// The live log's output memory: a few buffers in shared memory, reused batch after batch, that
// the log thread serialises records into and the main thread writes to the readers' sockets
// from. A fresh buffer a batch (serialised, transferred, written, then collected) cost both
// threads page faults, zeroing and the garbage collector's time; a slot is written again once
// every write of it has completed, which each holder says by releasing it.

/** How many slots the log thread has. Two take turns while readers keep up; more hold the batches of slower ones. */
export const SLOTS = 8;

/** A slot's memory is the first size asked of it rounded up to a power of two, at least this. */
const MIN_SLOT_BYTES = 64 * 1024;

/** The largest slot: a batch's output larger than this gets memory of its own. */
const MAX_SLOT_BYTES = 8 * 1024 * 1024;

/**
 * How many hold each slot, in memory both threads share: the log thread holds a slot while it
 * writes it and counts one more for each write of it it hands over; each write that completes
 * (or is dropped) releases one. Only the log thread takes a slot, and only when its count is 0.
 */
export type SlotHolders = Int32Array<SharedArrayBuffer>;

export function slotHolders(): SlotHolders {
  return new Int32Array(new SharedArrayBuffer(4 * SLOTS));
}

/** Adds a holder to `slot` (-1: memory of its own, which holds nothing). */
export function holdSlot(holders: SlotHolders, slot: number): void {
  if (slot >= 0) Atomics.add(holders, slot, 1);
}

/** Releases one hold on `slot` (-1: nothing to release). */
export function releaseSlot(holders: SlotHolders, slot: number): void {
  if (slot >= 0) Atomics.sub(holders, slot, 1);
}

/** Memory to serialise into: a slot's (`slot` ≥ 0, shared), or a buffer of its own (`slot` -1, transferable). */
export interface SlotMemory {
  bytes: Buffer;
  slot: number;
}

/** The log thread's side: which memory each slot has, and taking a free one. */
export class OutputSlots {
  private readonly memory: Array<Buffer | undefined> = new Array<Buffer | undefined>(SLOTS).fill(undefined);

  constructor(private readonly holders: SlotHolders) {}

  /**
   * At least `size` bytes, held once by the caller until it releases them: a free slot's memory
   * (one already large enough if there is one), or a buffer of its own when every slot is held
   * or `size` is larger than a slot may be.
   */
  take(size: number): SlotMemory {
    if (size <= MAX_SLOT_BYTES) {
      let free = -1;
      for (let i = 0; i < SLOTS; i++) {
        if (Atomics.load(this.holders, i) !== 0) continue;
        if ((this.memory[i]?.length ?? 0) >= size) return this.hold(i);
        if (free < 0) free = i;
      }
      if (free >= 0) {
        // Its old memory is written no more (nobody holds it): the garbage collector takes it.
        this.memory[free] = Buffer.from(new SharedArrayBuffer(Math.max(MIN_SLOT_BYTES, 2 ** Math.ceil(Math.log2(size)))));
        return this.hold(free);
      }
    }
    return { bytes: Buffer.allocUnsafeSlow(size), slot: -1 };
  }

  private hold(slot: number): SlotMemory {
    Atomics.store(this.holders, slot, 1);
    return { bytes: this.memory[slot]!, slot };
  }
}
