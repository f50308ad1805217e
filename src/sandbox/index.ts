// The sandbox: a tenant program seen from the host. Load a static x86-64 program into a tiny VM,
// make instances of it, call them with requests (one by one, or through a pool that loads on
// loader threads and runs calls on this thread in slices),
// reset them between calls, or run a program as a process. The one surface `server/`, `cli/` and
// embedders use; nothing above this layer reaches into `vmm/` or `kvm/`.
export { Kvm, KvmError } from '../kvm/kvm.ts';
export { SandboxError, type SandboxFailureKind } from '../vmm/errors.ts';
export { ProgramError } from '../vmm/linux/elf.ts';
export { drainShellPool } from '../vmm/memory/shell.ts';
export { Program, type ExportedProgram, type LoadTiming, type LocalProgramOptions } from './program.ts';
export { Instance, type BatchItem, type BatchOutcome, type CallOptions, type CallResult, type CallUsage, type HostCalls } from './instance.ts';
export { MAX_BATCH } from './batch-abi.ts';
export { ProgramPool, QueueFullError, DEFAULT_SLICE_MS, type PoolProgramOptions, type ProgramPoolOptions } from './program-pool.ts';
export { atTurnEnd, type TurnEndRound } from './turn-end.ts';
export { ProgramLoadError, type Warmup } from './loaders.ts';
export type { LoadStage } from './loader-protocol.ts';
export { runProcess, processStdio, type ProcessExit, type ProcessOptions } from './process.ts';
export { measureExitFloor } from './floor.ts';
export { MAX_FETCH_RESPONSE_BYTES, type Phase, type RecvDirective } from './abi.ts';
export { MAX_WARMUP_REQUESTS, PROGRAM_DEFAULTS, type WarmupOptions, type CachePolicy, type KvIncrementResult, type KvSwapResult, type Lifecycle, type ProgramMode, type ProgramOptions, type SandboxRequest, type SandboxResponse } from './types.ts';
export type { Stdio } from '../vmm/linux/syscalls/context.ts';
export { Journal, ReplayDiverged, recordedAnswers, replayHostCalls, REPLAYABLE_FAILURES, type JournalStep, type RecordedAnswers } from './replay.ts';
