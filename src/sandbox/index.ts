// The sandbox: a tenant program seen from the host. Load a static x86-64 program into a tiny VM,
// make instances of it, call them with requests (in this thread or through the VM worker pool),
// reset them between calls, or run a program as a process. The one surface `server/`, `cli/` and
// embedders use; nothing above this layer reaches into `vmm/` or `kvm/`.
export { Kvm, KvmError } from '../kvm/kvm.ts';
export { SandboxError, type SandboxFailureKind } from '../vmm/errors.ts';
export { ProgramError } from '../vmm/linux/elf.ts';
export { drainShellPool } from '../vmm/memory/shell.ts';
export { Program, Instance, type CallOptions, type CallResult, type ExportedProgram, type HostCalls, type LoadTiming, type LocalProgramOptions } from './program.ts';
export { VmWorkers, QueueFullError, type PoolProgramOptions, type Warmup } from './pool.ts';
export { runProcess, processStdio, type ProcessExit, type ProcessOptions } from './process.ts';
export { measureExitFloor } from './floor.ts';
export { MAX_FETCH_RESPONSE_BYTES, type Phase, type RecvDirective } from './abi.ts';
export { PROGRAM_DEFAULTS, type CachePolicy, type ProgramMode, type ProgramOptions, type SandboxRequest, type SandboxResponse } from './types.ts';
export type { Stdio } from '../vmm/linux/syscalls/context.ts';
