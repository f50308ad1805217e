// `new Kvm()` checks the API version and every capability tinyedge relies on, and refuses a host
// that lacks one by naming it and what it is for (not with a bare EINVAL from a later ioctl). The
// refusals are tested through the pure check over KVM_CHECK_EXTENSION answers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { missingCapability, REQUIRED_CAPABILITIES } from '../../src/kvm/capabilities.ts';
import * as K from '../../src/kvm/constants.ts';
import { Kvm } from '../../src/kvm/kvm.ts';
import { needsKvm } from '../helpers/kvm.ts';

/** KVM_CHECK_EXTENSION answers of a KVM that has every capability with every flag, except as `except` says. */
function answers(except: Record<number, number> = {}): (cap: number) => number {
  return (cap) => except[cap] ?? 0xff;
}

describe('capability checks on this host', needsKvm(), () => {
  test('opening /dev/kvm checks the capabilities tinyedge uses, and this host has each with its flags', () => {
    const kvm = new Kvm();
    try {
      for (const cap of REQUIRED_CAPABILITIES) {
        const answer = kvm.checkExtension(cap.number);
        assert.ok(answer > 0, `${cap.name} is present`);
        for (const [flag, bit] of Object.entries(cap.flags ?? {})) assert.ok((answer & bit) !== 0, `${cap.name} offers ${flag}`);
      }
      assert.equal(missingCapability((cap) => kvm.checkExtension(cap)), undefined);
    } finally {
      kvm.close();
    }
  });
});

describe('capability check messages', () => {
  test('the checked list holds the capabilities the VMM relies on', () => {
    const names = REQUIRED_CAPABILITIES.map((c) => c.name);
    for (const name of ['KVM_CAP_SYNC_REGS', 'KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2', 'KVM_CAP_XSAVE', 'KVM_CAP_XCRS']) {
      assert.ok(names.includes(name), `${name} is checked`);
    }
    const sync = REQUIRED_CAPABILITIES.find((c) => c.name === 'KVM_CAP_SYNC_REGS');
    assert.deepEqual(sync?.flags, { KVM_SYNC_X86_REGS: K.KVM_SYNC_X86_REGS, KVM_SYNC_X86_SREGS: K.KVM_SYNC_X86_SREGS });
  });

  test('a KVM with every capability and flag passes', () => {
    assert.equal(missingCapability(answers()), undefined);
  });

  test('each missing capability is named, with what tinyedge needs it for', () => {
    for (const cap of REQUIRED_CAPABILITIES) {
      const message = missingCapability(answers({ [cap.number]: 0 }));
      assert.equal(message, `this host's KVM lacks ${cap.name}, which tinyedge needs for ${cap.neededFor}`);
    }
  });

  test('a KVM that answers KVM_CHECK_EXTENSION with an error counts as lacking the capability', () => {
    assert.match(missingCapability(answers({ [K.KVM_CAP_XCRS]: -1 })) ?? '', /lacks KVM_CAP_XCRS, which tinyedge needs for letting guests use AVX/);
  });

  test('sync regs without the segment registers is refused, naming the missing flag', () => {
    const message = missingCapability(answers({ [K.KVM_CAP_SYNC_REGS]: K.KVM_SYNC_X86_REGS }));
    assert.equal(message, `this host's KVM offers KVM_CAP_SYNC_REGS without KVM_SYNC_X86_SREGS, which tinyedge needs for ${REQUIRED_CAPABILITIES.find((c) => c.name === 'KVM_CAP_SYNC_REGS')!.neededFor}`);
  });

  test('a dirty log that cannot be protected by hand is refused', () => {
    const message = missingCapability(answers({ [K.KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2]: K.KVM_DIRTY_LOG_INITIALLY_SET }));
    assert.match(message ?? '', /offers KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 without KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE/);
  });
});
