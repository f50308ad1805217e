// The shared store's records whose body is still being written (`SharedStore.reserve`): the
// writer publishes its progress, readers on any thread follow it without blocking, and a record
// purged meanwhile stays whole for those readers until it is complete (FLAG_UNLISTED, table.ts).
import * as L from './layout.ts';
import { NamespaceWalks } from './walks.ts';

/** Where a followed record stands: see `FillingRecords.progress`. */
export interface RecordProgress {
  state: 'gone' | 'filling' | 'whole';
  filled: number;
  seq: number;
}

/** The filling side of the store: what writers and readers of a body being written call. */
export class FillingRecords extends NamespaceWalks {
  /** A filling record has `bytes` of its body written; wakes its readers. */
  fill(id: number, gen: number, bytes: number): boolean {
    if (!this.isLive(id, gen)) return false;
    const w = id * L.REC_WORDS;
    this.notStream(w);
    Atomics.store(this.idx, w + L.R_FILLED, bytes);
    Atomics.add(this.idx, w + L.R_FILL_SEQ, 1);
    Atomics.notify(this.idx, w + L.R_FILL_SEQ);
    return true;
  }

  /**
   * The body of a filling record is whole: it becomes an ordinary record; wakes its readers. One a
   * purge unlisted meanwhile goes now (its readers still read it whole); answers false for it.
   */
  complete(id: number, gen: number): boolean {
    if (!this.isLive(id, gen)) return false;
    const w = id * L.REC_WORDS;
    this.notStream(w);
    Atomics.store(this.idx, w + L.R_FILLED, this.idx[w + L.R_BODY_LEN]!);
    const flags = Atomics.and(this.idx, w + L.R_FLAGS, ~L.FLAG_FILLING);
    Atomics.add(this.idx, w + L.R_FILL_SEQ, 1);
    Atomics.notify(this.idx, w + L.R_FILL_SEQ);
    if ((flags & L.FLAG_UNLISTED) === 0) return true;
    this.write(null, () => {
      if (this.isLive(id, gen)) this.kill(id, false);
    });
    return false;
  }

  /**
   * Whether a reader besides the writer (whose own pin is one) follows the filling record named:
   * then its body must go on arriving even when the writer's thread has nobody left to send it to.
   */
  followed(id: number, gen: number): boolean {
    return id >= 0 && id < this.records && this.isLive(id, gen) && Atomics.load(this.idx, id * L.REC_WORDS + L.R_PINS) > 1;
  }

  /** The writer of a filling record gives up (its fetch failed): the record goes, and its readers see it gone. */
  abandon(id: number, gen: number): void {
    if (!(id >= 0 && id < this.records)) return;
    this.write(null, () => {
      if (this.isLive(id, gen)) this.kill(id, false);
    });
  }

  /**
   * Where a record a reader follows stands: gone (removed, evicted, or its writer gave up), still
   * filling with `filled` bytes written (mod 2^32 for a stream, streams.ts), or whole. `seq` is
   * what `waitProgress` waits to change.
   */
  progress(id: number, gen: number): RecordProgress {
    const w = id * L.REC_WORDS;
    const seq = Atomics.load(this.idx, w + L.R_FILL_SEQ);
    if (!this.isLive(id, gen)) {
      // Purged while filling, then completed: gone for lookups, whole for the readers that pin it
      // (their pin keeps the slot from reuse, so its generation is still the one kill gave it).
      const flags = Atomics.load(this.idx, w + L.R_FLAGS);
      const finished = (flags & (L.FLAG_UNLISTED | L.FLAG_FILLING)) === L.FLAG_UNLISTED && Atomics.load(this.idx, w + L.R_GEN) === gen + 1;
      if (!finished) return { state: 'gone', filled: 0, seq };
      return { state: 'whole', filled: (flags & L.FLAG_STREAM) !== 0 ? Atomics.load(this.idx, w + L.R_FILLED) >>> 0 : this.idx[w + L.R_BODY_LEN]!, seq };
    }
    const filling = (Atomics.load(this.idx, w + L.R_FLAGS) & L.FLAG_FILLING) !== 0;
    return { state: filling ? 'filling' : 'whole', filled: Atomics.load(this.idx, w + L.R_FILLED) >>> 0, seq };
  }

  /** A stream (streams.ts) is written with `append` and completed with `completeStream`. */
  private notStream(w: number): void {
    if ((this.idx[w + L.R_FLAGS]! & L.FLAG_STREAM) !== 0) throw new TypeError('a stream record is written with append and completed with completeStream');
  }

  /** Resolves when the record's progress moves past `seq` (or after `timeoutMs`), without blocking. */
  waitProgress(id: number, seq: number, timeoutMs: number): Promise<void> {
    const r = Atomics.waitAsync(this.idx, id * L.REC_WORDS + L.R_FILL_SEQ, seq, timeoutMs);
    return r.async ? r.value.then(() => undefined) : Promise.resolve();
  }
}
