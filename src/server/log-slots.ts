// The live log's output memory: a few buffers of the log thread's, reused batch after batch, that
// it serialises records into and writes to its readers' sockets and the access log from. A fresh
// buffer a batch (serialised, written, then collected) cost page faults, zeroing and the garbage
// collector's time; a slot is written again once every write of it has completed, which each
// holder says by releasing it.

/** How many slots there are. Two take turns while readers keep up; more hold the batches of slower ones. */
export const SLOTS = 8;

/** A slot's memory is the first size asked of it rounded up to a power of two, at least this. */
const MIN_SLOT_BYTES = 64 * 1024;

/** The largest slot: a batch's output larger than this gets memory of its own. */
export const MAX_SLOT_BYTES = 8 * 1024 * 1024;

/** Memory to serialise into: a slot's (`slot` ≥ 0), or a buffer of its own (`slot` -1, which nothing holds). */
export interface SlotMemory {
  bytes: Buffer;
  slot: number;
}

/**
 * The slots, their memory and how many hold each: whoever takes a slot holds it once, each write
 * of its bytes handed out holds it once more, and each write that completes (or is dropped)
 * releases its hold. A slot is taken again only when nothing holds it.
 */
export class OutputSlots {
  private readonly memory: Array<Buffer | undefined> = new Array<Buffer | undefined>(SLOTS).fill(undefined);
  private readonly holders = new Int32Array(SLOTS);

  /**
   * At least `size` bytes, held once by the caller until it releases them: a free slot's memory
   * (one already large enough if there is one), or a buffer of its own when every slot is held
   * or `size` is larger than a slot may be.
   */
  take(size: number): SlotMemory {
    if (size <= MAX_SLOT_BYTES) {
      let free = -1;
      for (let i = 0; i < SLOTS; i++) {
        if (this.holders[i] !== 0) continue;
        if ((this.memory[i]?.length ?? 0) >= size) return this.hold(i);
        if (free < 0) free = i;
      }
      if (free >= 0) {
        // Its old memory is written no more (nobody holds it): the garbage collector takes it.
        this.memory[free] = Buffer.allocUnsafeSlow(Math.max(MIN_SLOT_BYTES, 2 ** Math.ceil(Math.log2(size))));
        return this.hold(free);
      }
    }
    return { bytes: Buffer.allocUnsafeSlow(size), slot: -1 };
  }

  /** Adds a holder to `slot` (-1: memory of its own, which holds nothing). */
  holdSlot(slot: number): void {
    if (slot >= 0) this.holders[slot]!++;
  }

  /** Releases one hold on `slot` (-1: nothing to release). */
  releaseSlot(slot: number): void {
    if (slot >= 0) this.holders[slot]!--;
  }

  private hold(slot: number): SlotMemory {
    this.holders[slot] = 1;
    return { bytes: this.memory[slot]!, slot };
  }
}
