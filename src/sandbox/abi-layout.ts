// Where the SDK ABI's structures keep their fields (docs/guest-abi.md): the offset of every field
// the host reads or writes, under the names of guest/include/tinyedge.h, which asserts the same
// numbers at compile time (a test compares the two), and the ABI versions this host speaks.

/** The newest ABI version the host speaks (`TE_ABI_VERSION`): 2, the batched WAIT. */
export const ABI_VERSION = 2;
/** Versions of programs the host loads (docs/guest-abi.md, "Versions"); each gets its own in te_request.abi_version. */
export const ACCEPTED_ABI_VERSIONS: readonly number[] = [1, 2];
/** The first version whose WAIT hands the program a te_batch rather than one te_request. */
export const BATCH_ABI_VERSION = 2;

/** te_str: a pointer and a length, not NUL-terminated. */
export const TE_STR = { ptr: 0, len: 8, SIZE: 16 } as const;
/** te_header: two te_str. */
export const TE_HEADER = { name: 0, value: 16, SIZE: 32 } as const;
/** te_request: written by the host before each request. */
export const TE_REQUEST = {
  abi_version: 0, header_count: 4, method: 8, url: 24, path: 40, query: 56, body: 72, headers: 88, random: 96,
  phase: 128, resp_status: 132, resp_header_count: 136, flags: 140, resp_headers: 144, SIZE: 152,
} as const;
/** te_response: written by the program, read by the host after the handler. */
export const TE_RESPONSE = {
  status: 0, flags: 4, header_count: 8, headers: 16, body: 24, ttl_ms: 40, grace_ms: 48, keep_ms: 56, tags: 64, url: 80, SIZE: 96,
} as const;
/** te_fetch: a sub-request; the host writes the two `_len` fields. */
export const TE_FETCH = {
  origin: 0, method: 16, url: 32, headers: 48, header_count: 56, body: 64,
  resp_body: 80, resp_body_cap: 88, resp_body_len: 96, resp_headers: 104, resp_headers_cap: 112, resp_headers_len: 120, SIZE: 128,
} as const;
/**
 * te_batch (version 2): what WAIT returns, several requests for the program to answer one after
 * another. The host writes count, requests and responses (its slots, zeroed); the SDK writes
 * `current` before each handler and `answered` before the WAIT that ends the batch.
 */
export const TE_BATCH = { count: 0, current: 4, answered: 8, reserved: 12, requests: 16, responses: 24, SIZE: 32 } as const;
/** te_kv: a key-value call. */
export const TE_KV = { key: 0, value: 16, value_cap: 24, SIZE: 32 } as const;
/** te_kv_cas: a key-value compare-and-set. */
export const TE_KV_CAS = { key: 0, expected: 16, value: 32, flags: 48, SIZE: 56 } as const;
/** te_kv_cas.flags: store only when the key is absent; `expected` is not read (`TE_KV_CAS_ABSENT`). */
export const TE_KV_CAS_ABSENT = 1;

/** te_request.flags: the host's warm-up request after a load, not a client's (`TE_REQUEST_WARMUP`). */
export const TE_REQUEST_WARMUP = 1;
/** te_request.flags: a warm-up request before the snapshot (config `warmup`), with TE_REQUEST_WARMUP (`TE_REQUEST_PRESNAPSHOT`). */
export const TE_REQUEST_PRESNAPSHOT = 2;
/** te_request.flags (version 2): answer with the state to hand the next version, te_on_live_update (`TE_REQUEST_LIVE_UPDATE`). */
export const TE_REQUEST_LIVE_UPDATE = 4;
/** te_request.flags (version 2): the body is the previous version's state, for te_on_live_restore (`TE_REQUEST_LIVE_RESTORE`). */
export const TE_REQUEST_LIVE_RESTORE = 8;

/** te_response.flags: te_reset_after(), a persistent instance goes back to its snapshot after this response (`TE_RESET_AFTER`). */
export const TE_RESET_AFTER = 16;
