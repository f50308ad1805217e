// Paths in the config file: resolved from the config file's directory and checked at load time,
// so a missing program or directory is a config error with a line number rather than a failure
// when the first request boots the VM.
import { accessSync, closeSync, constants, openSync, readSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { no, ok, type Parsed } from './values.ts';

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

function reason(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  return err instanceof Error ? err.message : String(err);
}

/** A program: an existing, readable regular file starting with the ELF magic. */
export function programFile(baseDir: string): (v: unknown) => Parsed<string> {
  return (v) => {
    const expected = 'a readable static x86-64 executable';
    if (typeof v !== 'string' || v === '') return no(expected);
    const path = isAbsolute(v) ? v : resolve(baseDir, v);
    try {
      if (!statSync(path).isFile()) return no(expected, `${path} is not a regular file`);
      accessSync(path, constants.R_OK);
      // Reading four bytes catches a source file or script named by mistake before any VM boots.
      const head = Buffer.alloc(4);
      const fd = openSync(path, 'r');
      try {
        readSync(fd, head, 0, 4, 0);
      } finally {
        closeSync(fd);
      }
      if (!head.equals(ELF_MAGIC)) return no(expected, `${path} is not an ELF file`);
    } catch (err) {
      return no(expected, `${path}: ${reason(err)}`);
    }
    return ok(path);
  };
}

/** A directory a guest may read under: the VMM resolves it with realpath when the VM boots. */
export function readableDirectory(baseDir: string): (v: unknown) => Parsed<string> {
  return (v) => {
    const expected = 'an existing directory';
    if (typeof v !== 'string' || v === '') return no(expected);
    const path = isAbsolute(v) ? v : resolve(baseDir, v);
    try {
      if (!statSync(path).isDirectory()) return no(expected, `${path} is not a directory`);
      accessSync(path, constants.R_OK | constants.X_OK);
    } catch (err) {
      return no(expected, `${path}: ${reason(err)}`);
    }
    return ok(path);
  };
}
