// Tests that need /dev/kvm: skipped on a developer machine without it, failed under CI, where a
// missing /dev/kvm means the run proves nothing.
import { accessSync, constants, existsSync } from 'node:fs';

/** Why /dev/kvm cannot be used here, or null when it can. */
export function kvmUnusable(): string | null {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && existsSync('/sys/module/kvm')) {
      // Seen on machines that are themselves guests: the kernel has KVM, the hypervisor under it
      // offers no virtualisation, and no device is made (`dmesg | grep -i kvm` says why).
      return '/dev/kvm does not exist although the kernel has KVM: the machine offers no hardware virtualisation (see `dmesg | grep -i kvm`)';
    }
    if (code === 'ENOENT') return '/dev/kvm does not exist: the kernel has no KVM';
    return `/dev/kvm cannot be opened for reading and writing (${code ?? (err as Error).message})`;
  }
}

export function kvmAvailable(): boolean {
  return kvmUnusable() === null;
}

/** Options for `describe`/`test`: `{ skip }` when KVM is missing outside CI; throws under CI. */
export function needsKvm(): { skip: string | false } {
  const why = kvmUnusable();
  if (why === null) return { skip: false };
  if (process.env.CI) throw new Error(`${why}; CI is set, and KVM tests must run in CI`);
  return { skip: why };
}
