// Per-tenant key-value store for programs: in memory, survives instance resets, requests and
// program upgrades, bounded by a byte quota (keys plus values). Lives on the main thread, so every
// shard sees one store: the main thread's own calls use it directly, other shards' reach it by
// message (KvAccess).

/** A tenant's store as its programs' host calls reach it, directly or from another thread. */
export interface KvAccess {
  get(key: string): Uint8Array | undefined | Promise<Uint8Array | undefined>;
  /** False when the quota would be exceeded. */
  set(key: string, value: Uint8Array): boolean | Promise<boolean>;
  delete(key: string): boolean | Promise<boolean>;
}

export interface KvStats {
  keys: number;
  bytes: number;
  quotaBytes: number;
}

export class KvStore implements KvAccess {
  private readonly map = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private quotaBytes: number) {}

  get(key: string): Uint8Array | undefined {
    return this.map.get(key);
  }

  /** Stores `value` under `key`; false (and nothing changes) when the quota would be exceeded. */
  set(key: string, value: Uint8Array): boolean {
    const old = this.map.get(key);
    const keyBytes = Buffer.byteLength(key);
    const next = this.bytes - (old ? keyBytes + old.length : 0) + keyBytes + value.length;
    if (next > this.quotaBytes) return false;
    this.map.set(key, Uint8Array.from(value));
    this.bytes = next;
    return true;
  }

  delete(key: string): boolean {
    const old = this.map.get(key);
    if (!old) return false;
    this.map.delete(key);
    this.bytes -= Buffer.byteLength(key) + old.length;
    return true;
  }

  /** A new quota (config reload); existing entries stay even if they now exceed it. */
  resize(quotaBytes: number): void {
    this.quotaBytes = quotaBytes;
  }

  stats(): KvStats {
    return { keys: this.map.size, bytes: this.bytes, quotaBytes: this.quotaBytes };
  }
}
