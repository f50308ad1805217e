// Signal delivery, the vCPU's side of it (linux/signals.ts keeps the state, linux/sigframe.ts
// builds the frames). When a thread returns to ring 3 — from a system call, at a fault, or
// switched onto the vCPU — the pending signals it does not block are handled as the kernel's
// exit_to_user_mode does: an ignored one is dropped, one left to its default action ends the
// program, one with a handler gets a frame and the thread goes on in the handler; several stack
// their frames, the last one's handler running first. A fault in ring 3 raises its signal
// (a page fault the address space does not back is SIGSEGV, #DE is SIGFPE, …) when the program
// has a handler for it that it does not block; otherwise the fault ends the program as before.
// Anything that cannot be delivered (a stack that cannot take the frame, a forged frame, a
// handler outside the user half) becomes SIGSEGV, as it does in the kernel.
import { REGS } from '../../kvm/constants.ts';
import type { Kvm } from '../../kvm/kvm.ts';
import type { Vcpu } from '../../kvm/vcpu.ts';
import { dequeue, enqueue, hasUnblocked, MAX_QUEUED_RT, NSIG, type PendingSignal, pendingSet, SA_NODEFER, SA_RESETHAND,
  SEGV_MAPERR, setAltStack, SI_KERNEL, SIG_DFL, SIG_IGN, SIGBUS, SIGRTMIN, SIGSEGV, type SigAction, type SigInfo, sigbit,
  SignalTable, signalName, SS_AUTODISARM, SS_DISABLE, type ThreadSignals } from '../linux/signals.ts';
import { canonical, initialXstate, restoreFrame, setupFrame, type XstateGeometry, xstateGeometry } from '../linux/sigframe.ts';
import type { Signals } from '../linux/syscalls/context.ts';
import { EAGAIN, EINTR } from '../linux/syscalls/errno.ts';
import type { AddressSpace } from '../memory/address-space.ts';
import { type GuestMemory, TASK_SIZE_MAX } from '../memory/guest-memory.ts';
import { cpuFeatures } from '../memory/shell.ts';
import { exceptionSignal, HAS_ERROR_CODE } from '../x86/faults.ts';
import { IST_STACK_TOP } from '../x86/layout.ts';
import type { Scheduler } from './scheduler.ts';
import type { Thread } from './threads.ts';
import type { Tracer } from './trace.ts';

/** What delivery needs of the run loop. */
export interface DeliveryHost {
  /** Ends the program with `status`, killed by the signal named `signal`. */
  exit(status: number, signal: string): void;
  trace(): Tracer | undefined;
}

/** Where ring 3 goes on: the handler, or a frame's restored state. */
export interface UserJump {
  rip: number;
  rsp: number;
  rflags: number;
}

/** How a return to ring 3 went: nothing to deliver, handlers entered, or the program ended. */
type Outcome = 'none' | 'delivered' | 'killed';

/**
 * The most frames one return to ring 3 builds: more than one per signal that can be pending. A
 * handler address that keeps failing (SA_NODEFER SIGSEGV) would otherwise stack frames down all
 * of the program's memory in one exit, with the time limit only checked after it.
 */
const MAX_FRAMES_PER_RETURN = 2 * NSIG + MAX_QUEUED_RT;
const USER_HALF_END = 1n << 47n;
/** A futex key no futex word has, per thread: rt_sigsuspend waits there until a signal interrupts it. */
const SUSPEND_KEY = Number.MIN_SAFE_INTEGER;

const geometries = new WeakMap<Kvm, XstateGeometry>();

/** The XSAVE geometry of the vCPUs `kvm` makes (the components enabled in their XCR0). */
function geometryOf(kvm: Kvm): XstateGeometry {
  let g = geometries.get(kvm);
  if (!g) geometries.set(kvm, (g = xstateGeometry(kvm.supportedCpuid(), cpuFeatures(kvm).xcr0)));
  return g;
}

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
const regOf = (regs: Uint8Array, at: number): bigint => view(regs).getBigUint64(at, true);

/** A thread's registers and XSAVE image while frames are built on them; the image is fetched only if a frame needs it. */
class Context {
  private image: Uint8Array | undefined;
  /** The image was replaced (a frame reset the FPU, or rt_sigreturn restored one): it must go to KVM. */
  fpuChanged: boolean;

  constructor(public regs: Uint8Array, private readonly load: () => Uint8Array, image?: Uint8Array) {
    this.image = image;
    this.fpuChanged = image !== undefined;
  }

  get xsave(): Uint8Array {
    return (this.image ??= this.load());
  }

  set xsave(image: Uint8Array) {
    this.image = image;
    this.fpuChanged = true;
  }

  jump(): UserJump {
    return { rip: Number(regOf(this.regs, REGS.rip)), rsp: Number(regOf(this.regs, REGS.rsp)), rflags: Number(regOf(this.regs, REGS.rflags)) };
  }
}

export class SignalDelivery implements Signals {
  readonly table = new SignalTable();
  private readonly geometry: XstateGeometry;
  /** What rt_sigreturn restored, for the return to ring 3 that follows it. */
  private restored: Context | undefined;

  constructor(kvm: Kvm, private readonly vcpu: Vcpu, private readonly mem: GuestMemory, private readonly space: () => AddressSpace,
    private readonly threads: Scheduler, private readonly host: DeliveryHost) {
    this.geometry = geometryOf(kvm);
  }

  /** Every action back to SIG_DFL, nothing pending: a program at its entry. */
  reset(): void {
    this.table.reset();
    this.restored = undefined;
  }

  // --- Signals: what system calls ask ---------------------------------------------------------

  action(sig: number): SigAction {
    return this.table.action(sig);
  }

  setAction(sig: number, act: SigAction): void {
    this.table.setAction(sig, act, [...this.threads.all()].map((t) => t.signals));
  }

  send(tid: number | undefined, info: SigInfo): number {
    const sig = info.signo;
    const all = [...this.threads.all()];
    const blocks = (t: Thread): boolean => (t.signals.blocked & sigbit(sig)) !== 0n;
    // A signal to the program goes to the caller unless it blocks it, else to a thread that does not.
    const target = tid !== undefined ? this.threads.table.find(tid)! : !blocks(this.threads.current) ? this.threads.current : all.find((t) => !blocks(t));
    const blocked = target === undefined || blocks(target);
    const disposition = this.table.disposition(sig, blocked);
    if (disposition === 'drop') return 0;
    if (disposition === 'fatal') {
      this.host.exit(128 + sig, signalName(sig));
      return 0;
    }
    if (sig >= SIGRTMIN && this.table.queuedRealtime(all.map((t) => t.signals)) >= MAX_QUEUED_RT) return -EAGAIN;
    enqueue(tid === undefined ? this.table.shared : target!.signals.pending, { info });
    if (!blocked && target !== this.threads.current) this.threads.interrupt(target!);
    return 0;
  }

  pending(): bigint {
    const t = this.threads.current.signals;
    return pendingSet(t, this.table) & t.blocked;
  }

  stackPointer(): bigint {
    return BigInt(this.threads.userState().rsp);
  }

  suspend(mask: bigint): number {
    const t = this.threads.current;
    t.signals.savedMask = t.signals.blocked;
    t.signals.blocked = mask;
    if (hasUnblocked(t.signals, this.table)) return -EINTR;
    this.threads.futexWait(SUSPEND_KEY + t.tid, 0xffff_ffff, Infinity);
    return -EINTR;
  }

  sigreturn(): number {
    const { rip, rsp, rflags } = this.threads.userState();
    const regs = Uint8Array.from(this.vcpu.regsBytes());
    const v = view(regs);
    v.setBigUint64(REGS.rip, BigInt(rip), true);
    v.setBigUint64(REGS.rsp, BigInt(rsp), true);
    v.setBigUint64(REGS.rflags, BigInt(rflags), true);
    const t = this.threads.current.signals;
    const r = restoreFrame(this.mem, this.geometry, regs, this.vcpu.getXsave());
    if (r.mask !== undefined) t.blocked = r.mask;
    this.host.trace()?.sigreturn(r.mask ?? t.blocked);
    if (!r.regs || !r.xsave || !r.altStack) {
      this.force(t, SIGSEGV);
      return 0;
    }
    // restore_altstack: the frame's stack setting, against the restored stack pointer; its errors are ignored.
    setAltStack(t, r.altStack, regOf(r.regs, REGS.rsp));
    this.restored = new Context(r.regs, () => r.xsave!, r.xsave);
    return Number(BigInt.asIntN(64, regOf(r.regs, REGS.rax)));
  }

  // --- the run loop's side ----------------------------------------------------------------------

  /**
   * The calling thread returns from a system call to `rip`, `rsp`, `rflags` with `result`: where
   * it goes instead (a handler, or what rt_sigreturn restored), its registers set on the vCPU;
   * undefined to return as usual, or when the program ended (the loop's exit result says so).
   */
  onReturn(rip: number, rsp: number, rflags: number, result: number): UserJump | undefined {
    const t = this.threads.current.signals;
    const restored = this.restored;
    this.restored = undefined;
    if (!restored && t.pending.length === 0 && this.table.shared.length === 0 && t.savedMask === undefined) return undefined;
    let ctx = restored;
    if (!ctx) {
      const regs = Uint8Array.from(this.vcpu.regsBytes());
      const v = view(regs);
      v.setBigUint64(REGS.rip, BigInt(rip), true);
      v.setBigUint64(REGS.rsp, BigInt(rsp), true);
      v.setBigUint64(REGS.rflags, BigInt(rflags), true);
      v.setBigUint64(REGS.rax, BigInt.asUintN(64, BigInt(result)), true);
      ctx = new Context(regs, () => this.vcpu.getXsave());
    } else {
      this.checkJump(ctx, t);
    }
    const outcome = this.deliverInto(ctx, t);
    if (outcome === 'killed' || (outcome === 'none' && !restored)) return undefined;
    return this.apply(ctx);
  }

  /**
   * A CPU exception `vector` from the stub on the IST stack, CR2 `cr2`: delivers its signal and
   * returns where ring 3 goes on, or undefined when the fault is not the program's to handle (it
   * did not come from ring 3, no signal fits it, the program has no handler for it or blocks it,
   * or its frame could not be built) and ends the program as a fault. When the program ends by
   * a signal meanwhile, the loop's exit result says so.
   */
  onFault(vector: number, cr2: number): UserJump | undefined {
    const frame = this.vcpu.reg('rsp');
    const withCode = HAS_ERROR_CODE.has(vector) ? 1 : 0;
    if (frame + (5 + withCode) * 8 > IST_STACK_TOP) return undefined;
    const read = (i: number): number => this.mem.u64Raw(frame + (i + withCode) * 8);
    const [rip, cs, rflags, rsp] = [read(0), read(1), read(2), read(3)];
    if ((cs & 3) !== 3) return undefined;
    const mapped = cr2 < TASK_SIZE_MAX && this.space().vmas.find(cr2) !== undefined;
    const fault = exceptionSignal(vector, withCode ? this.mem.u64Raw(frame) : 0, cr2, rip, mapped, () => this.vcpu.getXsave());
    const t = this.threads.current.signals;
    if (!fault) return undefined;
    const sig = fault.info.signo;
    const action = this.table.action(sig);
    if (action.handler === SIG_DFL || action.handler === SIG_IGN || (t.blocked & sigbit(sig)) !== 0n) return undefined;
    const regs = Uint8Array.from(this.vcpu.regsBytes());
    const v = view(regs);
    v.setBigUint64(REGS.rip, BigInt(rip), true);
    v.setBigUint64(REGS.rsp, BigInt(rsp), true);
    v.setBigUint64(REGS.rflags, BigInt(rflags), true);
    const ctx = new Context(regs, () => this.vcpu.getXsave());
    if (!this.frame(ctx, t, fault)) return undefined;
    this.checkJump(ctx, t);
    if (this.deliverInto(ctx, t) === 'killed') return undefined;
    return this.apply(ctx);
  }

  /** `thread` goes onto the vCPU: its pending signals are delivered into its saved state. */
  switchIn(thread: Thread): void {
    const t = thread.signals;
    if (t.pending.length === 0 && this.table.shared.length === 0 && t.savedMask === undefined) return;
    const regs = Uint8Array.from(thread.regs!);
    if (thread.result !== undefined) {
      view(regs).setBigUint64(REGS.rax, BigInt.asUintN(64, BigInt(thread.result)), true);
      thread.result = undefined;
    }
    const saved = thread.xsave!;
    const ctx = new Context(regs, () => saved);
    this.deliverInto(ctx, t);
    // New arrays, never the old ones changed in place: a snapshot may share them.
    thread.regs = ctx.regs;
    if (ctx.fpuChanged) thread.xsave = ctx.xsave;
  }

  // --- delivering -------------------------------------------------------------------------------

  /**
   * get_signal's loop: takes pending signals `t` does not block, one after the other, until none
   * is left: ignored ones are dropped, one left to its default action ends the program, each one
   * with a handler gets a frame on the state in `ctx`. A rt_sigsuspend's mask is put back after.
   */
  private deliverInto(ctx: Context, t: ThreadSignals): Outcome {
    let delivered = false;
    for (let frames = 0; ; ) {
      const p = dequeue(t, this.table);
      if (!p) break;
      const sig = p.info.signo;
      const { handler } = this.table.action(sig);
      if (this.table.ignored(sig)) continue;
      if (handler === SIG_DFL || ++frames > MAX_FRAMES_PER_RETURN) {
        this.kill(handler === SIG_DFL ? sig : SIGSEGV);
        return 'killed';
      }
      if (!this.frame(ctx, t, p)) {
        // force_sigsegv: a SIGSEGV whose own frame failed is left to its default action.
        if (sig === SIGSEGV) this.table.resetToDefault(SIGSEGV);
        this.force(t, SIGSEGV);
        continue;
      }
      delivered = true;
      this.checkJump(ctx, t);
    }
    if (t.savedMask !== undefined) {
      t.blocked = t.savedMask;
      t.savedMask = undefined;
    }
    return delivered ? 'delivered' : 'none';
  }

  /**
   * One handler's frame on the state in `ctx` (setup_rt_frame, then signal_delivered): the frame
   * keeps the mask to go back to, the handler runs with its own added, the alternate stack is
   * disarmed if asked, SA_RESETHAND puts the default action back, and the FPU starts afresh.
   */
  private frame(ctx: Context, t: ThreadSignals, p: PendingSignal): boolean {
    const sig = p.info.signo;
    const act = this.table.action(sig);
    if ((act.flags & SA_RESETHAND) !== 0) this.table.resetToDefault(sig);
    const regs = Uint8Array.from(ctx.regs);
    const ok = setupFrame(this.mem, this.geometry, regs, ctx.xsave, { sig, info: p.info, trap: p.trap, action: act, mask: t.savedMask ?? t.blocked, altStack: t.altStack });
    if (!ok) return false;
    ctx.regs = regs;
    ctx.xsave = initialXstate(this.geometry, ctx.xsave);
    t.blocked |= act.mask | ((act.flags & SA_NODEFER) === 0 ? sigbit(sig) : 0n);
    t.savedMask = undefined;
    if ((t.altStack.flags & SS_AUTODISARM) !== 0) t.altStack = { sp: 0n, size: 0n, flags: SS_DISABLE };
    this.host.trace()?.signal(p.info);
    return true;
  }

  /**
   * force_sig: `sig` is pending for `t` and will be taken, whatever the program did to avoid it:
   * blocked or ignored, it is unblocked and left to its default action.
   */
  private force(t: ThreadSignals, sig: number, info: SigInfo = { signo: sig, code: SI_KERNEL, addr: 0n }): void {
    if (this.table.action(sig).handler === SIG_IGN || (t.blocked & sigbit(sig)) !== 0n) {
      this.table.resetToDefault(sig);
      t.blocked &= ~sigbit(sig);
    }
    enqueue(t.pending, { info });
  }

  private kill(sig: number): void {
    const name = signalName(sig);
    this.host.exit(128 + sig, name);
    this.host.trace()?.killed(name);
  }

  /**
   * Ring 3 cannot go on at a RIP or RSP outside the user half: what Linux's return to such a
   * state raises is forced instead — a non-canonical RIP fails the iret (SIGSEGV, SI_KERNEL), a
   * kernel one faults at the fetch (SIGSEGV, SEGV_MAPERR at RIP), a stack pointer there faults at
   * the first stack access (SIGBUS, SI_KERNEL).
   */
  private checkJump(ctx: Context, t: ThreadSignals): void {
    const rip = regOf(ctx.regs, REGS.rip);
    if (rip >= USER_HALF_END) {
      this.force(t, SIGSEGV, canonical(rip) ? { signo: SIGSEGV, code: SEGV_MAPERR, addr: rip } : undefined);
    } else if (regOf(ctx.regs, REGS.rsp) >= USER_HALF_END) {
      this.force(t, SIGBUS);
    }
  }

  /** Puts `ctx` on the vCPU; returns where ring 3 goes on. */
  private apply(ctx: Context): UserJump {
    this.vcpu.regsBytes().set(ctx.regs);
    this.vcpu.markRegsDirty();
    if (ctx.fpuChanged) this.vcpu.setXsave(Buffer.from(ctx.xsave.buffer, ctx.xsave.byteOffset, ctx.xsave.byteLength));
    return ctx.jump();
  }

  // --- snapshots --------------------------------------------------------------------------------

  save(): ReturnType<SignalTable['save']> {
    return this.table.save();
  }

  restore(state: ReturnType<SignalTable['save']>): void {
    this.table.restore(state);
    this.restored = undefined;
  }
}
