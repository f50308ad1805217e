// Programs loaded straight from guest executables for one `describe` block: one /dev/kvm for the
// block, and every program loaded in it closed after it. Call inside the block (it registers the
// block's `before` and `after`).
import { after, before } from 'node:test';
import { readFileSync } from 'node:fs';
import { Kvm } from '../../src/kvm/kvm.ts';
import { type LocalProgramOptions, Program } from '../../src/sandbox/program.ts';

export interface GuestPrograms {
  /** The block's /dev/kvm (opened by its `before`). */
  kvm(): Kvm;
  /** Boots the executable at `file` with `options`; closed after the block. */
  load(file: string, options: LocalProgramOptions): Program;
}

export function guestPrograms(): GuestPrograms {
  let kvm: Kvm | undefined;
  const programs: Program[] = [];
  before(() => {
    kvm = new Kvm();
  });
  after(() => {
    for (const p of programs) p.close();
    kvm?.close();
  });
  const open = (): Kvm => {
    if (!kvm) throw new Error('guestPrograms(): /dev/kvm is opened by the describe block\'s before()');
    return kvm;
  };
  return {
    kvm: open,
    load(file, options) {
      const p = new Program(open(), readFileSync(file), options);
      programs.push(p);
      return p;
    },
  };
}
