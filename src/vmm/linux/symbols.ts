// A program's function symbols, from its ELF `.symtab`, to name the code at a guest address in a
// fault message or a backtrace ("main+0x16"). Read once at load into a compact, sorted table of
// plain typed arrays (a snapshot carries it to other threads by structured cloning). The file is
// the tenant's: every offset and count in it is checked against the file before it is read, and
// a table that does not make sense is simply absent (a stripped program has none either).

const SHT_SYMTAB = 2;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const SHN_UNDEF = 0;
/** Longest name kept: C++ and Rust names can be long, and a line must stay readable. */
const MAX_NAME_BYTES = 256;

/** Function symbols sorted by address; names packed in `names`, each at `nameAt[i]`, `nameLen[i]` bytes. */
export interface SymbolTable {
  readonly addrs: Float64Array;
  readonly sizes: Float64Array;
  readonly nameAt: Uint32Array;
  readonly nameLen: Uint16Array;
  readonly names: Uint8Array;
}

/** `n` bytes at `off` lie inside `file`. */
const inside = (file: Buffer, off: number, n: number): boolean => Number.isSafeInteger(off) && off >= 0 && n >= 0 && off + n <= file.length;

/**
 * The function symbols of `file` (an ELF that loadElf accepted), their addresses moved by `bias`
 * (where a static-PIE was loaded); undefined when it has no usable `.symtab`.
 */
export function readSymbols(file: Buffer, bias: number): SymbolTable | undefined {
  const shoff = Number(file.readBigUInt64LE(40));
  const shentsize = file.readUInt16LE(58);
  const shnum = file.readUInt16LE(60);
  if (shentsize !== SHDR_SIZE || !inside(file, shoff, shnum * SHDR_SIZE)) return undefined;
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * SHDR_SIZE;
    if (file.readUInt32LE(sh + 4) !== SHT_SYMTAB) continue;
    const link = file.readUInt32LE(sh + 40);
    if (link >= shnum) return undefined;
    const strtab = shoff + link * SHDR_SIZE;
    const symOff = Number(file.readBigUInt64LE(sh + 24));
    const symSize = Number(file.readBigUInt64LE(sh + 32));
    const strOff = Number(file.readBigUInt64LE(strtab + 24));
    const strSize = Number(file.readBigUInt64LE(strtab + 32));
    if (!inside(file, symOff, symSize) || !inside(file, strOff, strSize)) return undefined;
    return collect(file, symOff, Math.floor(symSize / SYM_SIZE), file.subarray(strOff, strOff + strSize), bias);
  }
  return undefined;
}

function collect(file: Buffer, symOff: number, count: number, strings: Buffer, bias: number): SymbolTable | undefined {
  const picked: Array<{ addr: number; size: number; name: Buffer }> = [];
  let nameBytes = 0;
  for (let i = 0; i < count; i++) {
    const s = symOff + i * SYM_SIZE;
    const type = file[s + 4]! & 0xf;
    if ((type !== STT_FUNC && type !== STT_GNU_IFUNC) || file.readUInt16LE(s + 6) === SHN_UNDEF) continue;
    const value = Number(file.readBigUInt64LE(s + 8));
    const nameOff = file.readUInt32LE(s);
    if (value === 0 || nameOff >= strings.length) continue;
    const nul = strings.indexOf(0, nameOff);
    const end = Math.min(nul < 0 ? strings.length : nul, nameOff + MAX_NAME_BYTES);
    if (end === nameOff) continue;
    const name = strings.subarray(nameOff, end);
    picked.push({ addr: value + bias, size: Number(file.readBigUInt64LE(s + 16)), name });
    nameBytes += name.length;
  }
  if (picked.length === 0) return undefined;
  picked.sort((a, b) => a.addr - b.addr);
  const table: SymbolTable = {
    addrs: new Float64Array(picked.length),
    sizes: new Float64Array(picked.length),
    nameAt: new Uint32Array(picked.length),
    nameLen: new Uint16Array(picked.length),
    names: new Uint8Array(nameBytes),
  };
  let at = 0;
  picked.forEach((p, i) => {
    table.addrs[i] = p.addr;
    table.sizes[i] = p.size;
    table.nameAt[i] = at;
    table.nameLen[i] = p.name.length;
    table.names.set(p.name, at);
    at += p.name.length;
  });
  return table;
}

/**
 * The function containing `addr` as `name+0xoff` (just `name` at its first byte), or undefined
 * when no symbol covers it: past a sized function's end, or before the first.
 */
export function symbolize(table: SymbolTable | undefined, addr: number): string | undefined {
  if (!table) return undefined;
  const { addrs } = table;
  let lo = 0;
  let hi = addrs.length - 1;
  if (hi < 0 || !(addr >= addrs[0]!)) return undefined;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (addrs[mid]! <= addr) lo = mid;
    else hi = mid - 1;
  }
  const size = table.sizes[lo]!;
  const off = addr - addrs[lo]!;
  if (size > 0 && off >= size) return undefined;
  const at = table.nameAt[lo]!;
  // The names are the tenant's bytes: nothing in them may steer a terminal.
  const name = Buffer.from(table.names.buffer, table.names.byteOffset + at, table.nameLen[lo]!).toString('latin1').replace(/[^\x20-\x7e]/g, '?');
  return off === 0 ? name : `${name}+0x${off.toString(16)}`;
}
