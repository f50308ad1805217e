// What the host answered a guest during one call, in order — clock reads, random bytes and the
// embedder's host calls — so that a failed call can be replayed with the same answers. Recording
// runs on every call, so it keeps fixed arrays (allocated at the first step, reused after) and
// references to host-call answers, never copies of them: bounded in steps and bytes, past which
// the journal says it is truncated. Replaying serves the recorded answers back in the same order;
// a guest that asks for something else has diverged (ReplayDiverged), which is no guest failure.

/** Steps one journal keeps; past it, the journal is truncated. */
export const MAX_JOURNAL_STEPS = 512;
/** Bytes of clock values and random bytes one journal keeps. */
export const MAX_JOURNAL_BYTES = 32 * 1024;
/** Bytes of host-call answers (bodies, values) one journal keeps references to. */
export const MAX_JOURNAL_HOST_BYTES = 256 * 1024;

const CLOCK = 1;
const RANDOM = 2;
const HOST = 3;

/** One recorded answer, as a bundle holds it (JSON). */
export type JournalStep =
  | { step: 'clock'; clock: number; sec: number; nsec: number }
  | { step: 'random'; bytes: string }
  | { step: 'host'; call: string; what: string; answer?: unknown };

/** A host call as recorded: its name and what it asked (a key, a URL), and the answer when one came. */
export interface HostStep {
  call: number;
  what: unknown;
  answered: boolean;
  answer: unknown;
}

/** The guest asked the replay for something other than what the recorded run asked at that step. */
export class ReplayDiverged extends Error {
  constructor(readonly step: number, message: string) {
    super(`replay diverged at step ${step}: ${message}`);
    this.name = 'ReplayDiverged';
  }
}

/** How host-call steps become JSON and back (the sandbox knows the calls; this layer does not). */
export interface HostStepCodec {
  encode(step: HostStep): { call: string; what: string; answer?: unknown };
}

/**
 * A journal of one call's answers. `record` (the default) keeps them; `replay` serves the ones of
 * a recorded call and checks that the guest asks for the same things.
 */
export class Journal {
  private kinds: Uint8Array | undefined;
  private args: Float64Array | undefined;
  private ends: Uint32Array | undefined;
  private bytes: Uint8Array | undefined;
  private readonly hosts: HostStep[] = [];
  private hostBytes = 0;
  /** Steps kept. */
  private count = 0;
  /** Steps the guest took, kept or not. */
  private seen = 0;
  private truncatedAt = -1;
  private readonly replaying: JournalStep[] | undefined;
  private readonly replayTruncated: boolean;

  constructor(replay?: { steps: JournalStep[]; truncated: boolean }) {
    this.replaying = replay?.steps;
    this.replayTruncated = replay?.truncated ?? false;
  }

  get mode(): 'record' | 'replay' {
    return this.replaying === undefined ? 'record' : 'replay';
  }

  /** Forgets the steps of the last call (recording); a replay starts over. */
  reset(): void {
    this.count = 0;
    this.seen = 0;
    this.truncatedAt = -1;
    this.hostBytes = 0;
    this.hosts.length = 0;
  }

  /**
   * A read of clock `id`: `value` holds it as a timespec (16 bytes, seconds then nanoseconds).
   * Recording keeps it; replaying puts the recorded value there instead.
   */
  clock(id: number, value: Uint8Array): void {
    if (this.replaying !== undefined) {
      const s = this.next('clock', `clock ${id}`);
      if (s.step !== 'clock' || s.clock !== id) throw this.diverged(s, `clock ${id}`);
      const v = new DataView(value.buffer, value.byteOffset, 16);
      v.setBigInt64(0, BigInt(s.sec), true);
      v.setBigInt64(8, BigInt(s.nsec), true);
      return;
    }
    this.keep(CLOCK, id, value);
  }

  /** Random bytes the guest got (getrandom): kept, or replaced by the recorded ones. */
  random(value: Uint8Array): void {
    if (this.replaying !== undefined) {
      const s = this.next('random', `${value.length} random bytes`);
      const bytes = s.step === 'random' ? Buffer.from(s.bytes, 'base64') : undefined;
      if (bytes === undefined || bytes.length !== value.length) throw this.diverged(s, `${value.length} random bytes`);
      value.set(bytes);
      return;
    }
    this.keep(RANDOM, value.length, value);
  }

  /** A host call starts (recording): its step, to be answered by `hostAnswer`. */
  hostStart(call: number, what: unknown): HostStep | undefined {
    const at = this.slot(0);
    if (at < 0) return undefined;
    const step: HostStep = { call, what, answered: false, answer: undefined };
    this.kinds![at] = HOST;
    this.args![at] = this.hosts.length;
    this.ends![at] = at === 0 ? 0 : this.ends![at - 1]!;
    this.hosts.push(step);
    return step;
  }

  /** The answer to a host call `hostStart` recorded; `bytes` of it count against the host budget. */
  hostAnswer(step: HostStep | undefined, answer: unknown, bytes: number): void {
    if (step === undefined) return;
    if (this.hostBytes + bytes > MAX_JOURNAL_HOST_BYTES) {
      if (this.truncatedAt < 0) this.truncatedAt = this.seen;
      return;
    }
    this.hostBytes += bytes;
    step.answered = true;
    step.answer = answer;
  }

  /** Replaying: the recorded host call at this step, which must be `name` asking `what`. */
  replayHost(name: string, what: string): { answered: boolean; answer?: unknown } {
    const s = this.next('host', `${name} ${what}`);
    if (s.step !== 'host' || s.call !== name || s.what !== what) throw this.diverged(s, `${name} ${what}`);
    return s.answer === undefined ? { answered: false } : { answered: true, answer: s.answer };
  }

  /** The steps kept, as JSON, and whether some were not (the bounds). */
  export(codec: HostStepCodec): { steps: JournalStep[]; truncated: boolean; stepsSeen: number } {
    const steps: JournalStep[] = [];
    for (let i = 0; i < this.count; i++) {
      const kind = this.kinds![i]!;
      if (kind === HOST) {
        steps.push({ step: 'host', ...codec.encode(this.hosts[this.args![i]!]!) });
        continue;
      }
      const from = i === 0 ? 0 : this.ends![i - 1]!;
      const data = this.bytes!.subarray(from, this.ends![i]!);
      if (kind === CLOCK) {
        const v = new DataView(data.buffer, data.byteOffset, 16);
        steps.push({ step: 'clock', clock: this.args![i]!, sec: Number(v.getBigInt64(0, true)), nsec: Number(v.getBigInt64(8, true)) });
      } else {
        steps.push({ step: 'random', bytes: Buffer.from(data).toString('base64') });
      }
    }
    return { steps, truncated: this.truncatedAt >= 0, stepsSeen: this.seen };
  }

  /** Keeps a step of `kind` with `data` copied, or notes the truncation. */
  private keep(kind: number, arg: number, data: Uint8Array): void {
    const at = this.slot(data.length);
    if (at < 0) return;
    const from = at === 0 ? 0 : this.ends![at - 1]!;
    this.bytes!.set(data, from);
    this.kinds![at] = kind;
    this.args![at] = arg;
    this.ends![at] = from + data.length;
  }

  /** The index of a new step with room for `bytes`, or -1 once the journal is truncated. */
  private slot(bytes: number): number {
    this.seen++;
    if (this.truncatedAt >= 0) return -1;
    if (this.kinds === undefined) {
      this.kinds = new Uint8Array(MAX_JOURNAL_STEPS);
      this.args = new Float64Array(MAX_JOURNAL_STEPS);
      this.ends = new Uint32Array(MAX_JOURNAL_STEPS);
      this.bytes = new Uint8Array(MAX_JOURNAL_BYTES);
    }
    const used = this.count === 0 ? 0 : this.ends![this.count - 1]!;
    if (this.count >= MAX_JOURNAL_STEPS || used + bytes > MAX_JOURNAL_BYTES) {
      this.truncatedAt = this.seen - 1;
      return -1;
    }
    return this.count++;
  }

  /** Replaying: the next recorded step, or a divergence when none is left. */
  private next(kind: string, asked: string): JournalStep {
    const steps = this.replaying!;
    const at = this.seen++;
    const s = steps[at];
    if (s === undefined) {
      const why = this.replayTruncated ? `the bundle's answers were truncated after ${steps.length} steps` : `the recorded call took only ${steps.length} steps`;
      throw new ReplayDiverged(at, `the program asked for ${asked} (a ${kind} step), past the recorded answers: ${why}`);
    }
    return s;
  }

  private diverged(s: JournalStep, asked: string): ReplayDiverged {
    const recorded = s.step === 'clock' ? `clock ${s.clock}` : s.step === 'random' ? `${Buffer.from(s.bytes, 'base64').length} random bytes` : `${s.call} ${s.what}`;
    return new ReplayDiverged(this.seen - 1, `the program asked for ${asked}, the recorded run for ${recorded}`);
  }
}
