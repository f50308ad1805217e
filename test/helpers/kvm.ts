// Tests that need /dev/kvm: skipped on a developer machine without it, failed under CI, where a
// missing /dev/kvm means the run proves nothing.
import { accessSync, constants } from 'node:fs';

export function kvmAvailable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Options for `describe`/`test`: `{ skip }` when KVM is missing outside CI; throws under CI. */
export function needsKvm(): { skip: string | false } {
  if (kvmAvailable()) return { skip: false };
  if (process.env.CI) throw new Error('/dev/kvm is not usable and CI is set: KVM tests must run in CI');
  return { skip: '/dev/kvm is not available on this machine' };
}
