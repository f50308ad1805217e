// The trace (`tinyedge run --trace`, `tinyedge dev --trace`): every system call and hypercall a
// program makes, decoded strace-style, and for a fault the function at RIP, a backtrace along the
// frame-pointer chain and the instruction bytes there. The run loop calls it only when a machine
// has one: with no trace, a call costs one property check.
import { KVM_REGS_SIZE, type RegName, REGS } from '../../kvm/constants.ts';
import type { Vcpu } from '../../kvm/vcpu.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import { type SigInfo, signalName } from '../linux/signals.ts';
import { formatSiginfo, formatSigset, formatSyscall, guestBytes } from '../linux/syscalls/decode.ts';
import { kernelSyscallName } from '../linux/syscalls/names.ts';
import { SYSCALL_NAMES, SYSCALL_TABLE } from '../linux/syscalls/index.ts';
import { type SymbolTable, symbolize } from '../linux/symbols.ts';
import type { RunResult } from './loop.ts';

/** How the layer that defines hypercalls (the sandbox's SDK ABI) names and decodes them. */
export interface HypercallDecoder {
  /** The call's name, e.g. `te_log`. */
  name(call: number): string;
  /** Its arguments (RDI, RSI), read through `mem`'s checks; never throws. */
  args(mem: GuestMemory, call: number, rdi: bigint, rsi: bigint): string;
  /** Its result (RAX) as a value or an errno. */
  result(call: number, value: number): string;
}

/** Where the trace goes, and how to read hypercalls. */
export interface TraceOptions {
  /** Receives each line, without its newline. */
  write(line: string): void;
  hypercalls?: HypercallDecoder;
}

/** Frames of a backtrace, at most: the chain is the guest's, it may be long or a loop. */
const MAX_FRAMES = 32;
/** Instruction bytes shown at a faulting RIP: the longest x86 instruction is 15. */
const CODE_BYTES = 16;
const SYSCALL_ARGS: readonly RegName[] = ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'];
const NR_RT_SIGRETURN = 15;

const hex = (n: number): string => `0x${n.toString(16)}`;

export class Tracer {
  /** The registers of the call being answered, as they were when it was made. */
  private readonly regs = new Uint8Array(KVM_REGS_SIZE);
  private readonly view = new DataView(this.regs.buffer);
  /** The mask the rt_sigreturn being answered put back, shown as its argument. */
  private sigreturnMask: bigint | undefined;

  constructor(private readonly options: TraceOptions) {}

  /** Keeps the registers of a call about to be answered (its handler may change them). */
  enter(vcpu: Vcpu): void {
    this.regs.set(vcpu.regsBytes());
  }

  private reg(name: RegName): bigint {
    return this.view.getBigUint64(REGS[name], true);
  }

  /** Prints the system call `enter` saw and its result; `exit` when the call ended the program. */
  syscall(mem: GuestMemory, result: number, exit: RunResult | undefined): void {
    // The kernel takes the number from EAX.
    const nr = Number(this.reg('rax') & 0xffff_ffffn);
    const name = SYSCALL_NAMES.get(nr) ?? kernelSyscallName(nr);
    const implemented = SYSCALL_TABLE[nr] !== undefined;
    // rt_sigreturn's argument is the frame: strace shows the mask it puts back.
    const mask = nr === NR_RT_SIGRETURN ? this.sigreturnMask : undefined;
    this.sigreturnMask = undefined;
    const args = mask !== undefined ? `{mask=${formatSigset(mask)}}` : SYSCALL_ARGS.map((r) => this.reg(r));
    this.options.write(formatSyscall(mem, nr, name, args, result, implemented, exit !== undefined));
    if (exit?.kind === 'exit') this.options.write(exit.signal ? `+++ killed by ${exit.signal} +++` : `+++ exited with ${exit.status} +++`);
  }

  /** Notes the mask the rt_sigreturn being answered restored. */
  sigreturn(mask: bigint): void {
    this.sigreturnMask = mask;
  }

  /** Prints a signal as it is delivered to a handler: `--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10} ---`. */
  signal(info: SigInfo): void {
    this.options.write(`--- ${signalName(info.signo)} {${formatSiginfo(info)}} ---`);
  }

  /** Prints the end of a program by a pending signal's default action. */
  killed(signal: string): void {
    this.options.write(`+++ killed by ${signal} +++`);
  }

  /** Prints the hypercall `enter` saw: with its result, or unfinished when the guest waits for it. */
  hypercall(mem: GuestMemory, result: number, unfinished: boolean): void {
    const call = Number(this.reg('rax') & 0xffff_ffffn);
    const decoder = this.options.hypercalls;
    const rdi = this.reg('rdi');
    const rsi = this.reg('rsi');
    const name = decoder ? decoder.name(call) : `hypercall_${call}`;
    const args = decoder ? decoder.args(mem, call, rdi, rsi) : `0x${rdi.toString(16)}, 0x${rsi.toString(16)}`;
    this.options.write(`${name}(${args}) ${unfinished ? '<unfinished ...>' : `= ${this.hypercallResult(call, result)}`}`);
  }

  /** Prints the answer to hypercall `call`, which the guest waited for. */
  resumed(call: number, value: number): void {
    const name = this.options.hypercalls?.name(call) ?? `hypercall_${call}`;
    this.options.write(`<... ${name} resumed> = ${this.hypercallResult(call, value)}`);
  }

  private hypercallResult(call: number, value: number): string {
    return this.options.hypercalls?.result(call, value) ?? String(value);
  }

  /** Prints a fault: `message`, the instruction bytes at `rip`, and the frames down the RBP chain from it. */
  fault(mem: GuestMemory, symbols: SymbolTable | undefined, message: string, rip: number, rbp: number): void {
    const out = (line: string): void => this.options.write(line);
    out(`--- ${message} ---`);
    const code = guestBytes(mem, BigInt(rip), CODE_BYTES, false);
    out(`    code at rip: ${code ? Array.from(code, (b) => b.toString(16).padStart(2, '0')).join(' ') : 'not readable'}`);
    backtrace(mem, symbols, rip, rbp).forEach((addr, i) => {
      const symbol = symbolize(symbols, addr);
      out(`    #${i} ${hex(addr)}${symbol ? ` in ${symbol}` : ''}`);
    });
  }
}

/**
 * `rip`, then the return addresses along the frame-pointer chain from `rbp` ([rbp] = the caller's
 * RBP, [rbp+8] = the return address), read through the memory checks. It stops at the first frame
 * that is not one: a bad pointer, a chain that does not go up the stack, a return address outside
 * the program's functions or not just after a call (code built without frame pointers leaves
 * something else in RBP: the chain ends there), or MAX_FRAMES.
 */
function backtrace(mem: GuestMemory, symbols: SymbolTable | undefined, rip: number, rbp: number): number[] {
  const frames = [rip];
  let fp = rbp;
  while (frames.length < MAX_FRAMES && fp !== 0 && fp % 8 === 0) {
    let next: number;
    let ret: number;
    try {
      next = mem.u64(fp);
      ret = mem.u64(fp + 8);
    } catch {
      break;
    }
    if (symbolize(symbols, ret) === undefined || !afterCall(mem, ret)) break;
    frames.push(ret);
    if (next <= fp) break;
    fp = next;
  }
  return frames;
}

const CALL_REL32 = 0xe8;
const GROUP5 = 0xff;
/** ModRM's reg field that makes opcode FF a near call. */
const GROUP5_CALL = 2;

/**
 * True when the bytes before `ret` end with a near call, as they do before a return address:
 * `call rel32` (E8 + 4 bytes), or `call r/m64` (FF /2 with a ModRM, SIB and displacement of 2
 * to 7 bytes in all).
 */
function afterCall(mem: GuestMemory, ret: number): boolean {
  const before = guestBytes(mem, BigInt(ret - 7), 7, false);
  if (!before || before.length < 7) return false;
  if (before[2] === CALL_REL32) return true;
  for (let len = 2; len <= 7; len++) {
    const at = 7 - len;
    if (before[at] === GROUP5 && ((before[at + 1]! >> 3) & 7) === GROUP5_CALL) return true;
  }
  return false;
}
