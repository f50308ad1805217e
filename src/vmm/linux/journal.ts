// What the host answered a guest during one call, in order — clock reads, random bytes and the
// embedder's host calls — so that a failed call can be replayed with the same answers. Recording
// runs on every call, so it allocates nothing per call: fixed arrays (made at the first step,
// reused after) and references to host-call answers, never copies of them; bounded in steps and
// bytes, past which the journal says it is truncated. Replaying serves the recorded answers back in the same order;
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

/** A host call as recorded (made only for a bundle): its number, what it asked (a key, a sub-request), and the answer when one came. */
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
  /** Host steps, by step index: what each asked, whether it was answered, and the answer. */
  private answered: Uint8Array | undefined;
  private readonly hostWhat: unknown[] = [];
  private readonly hostAnswers: unknown[] = [];
  /** Host steps kept in this call: their references are dropped at the next reset. */
  private hostSteps = 0;
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
    if (this.hostSteps > 0) {
      // What the last call's host calls asked and got is not kept alive by this instance.
      for (let i = 0; i < this.count; i++) {
        if (this.kinds![i] !== HOST) continue;
        this.hostWhat[i] = undefined;
        this.hostAnswers[i] = undefined;
      }
      this.hostSteps = 0;
    }
    this.count = 0;
    this.seen = 0;
    this.truncatedAt = -1;
    this.hostBytes = 0;
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

  /** A host call starts (recording): its step, to be answered by `hostAnswer` (-1: not kept). */
  hostStart(call: number, what: unknown): number {
    const at = this.slot(0);
    if (at < 0) return -1;
    this.kinds![at] = HOST;
    this.args![at] = call;
    this.ends![at] = at === 0 ? 0 : this.ends![at - 1]!;
    this.answered![at] = 0;
    this.hostWhat[at] = what;
    this.hostSteps++;
    return at;
  }

  /** The answer to the host call `hostStart` kept as step `at`; `bytes` of it count against the host budget. */
  hostAnswer(at: number, answer: unknown, bytes: number): void {
    if (at < 0) return;
    if (this.hostBytes + bytes > MAX_JOURNAL_HOST_BYTES) {
      // The journal ends before this call: kept unanswered, it would replay as a call that never answers.
      this.truncatedAt = at;
      this.count = at;
      this.hostWhat[at] = undefined;
      return;
    }
    this.hostBytes += bytes;
    this.answered![at] = 1;
    this.hostAnswers[at] = answer;
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
        steps.push({ step: 'host', ...codec.encode({ call: this.args![i]!, what: this.hostWhat[i], answered: this.answered![i] === 1, answer: this.hostAnswers[i] }) });
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
      this.answered = new Uint8Array(MAX_JOURNAL_STEPS);
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
