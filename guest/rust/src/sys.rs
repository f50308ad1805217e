//! The raw ABI (docs/guest-abi.md), under the names of `guest/include/tinyedge.h`: the structures
//! the host reads and writes, their offsets asserted at compile time (the same numbers as the C
//! header and the host's `src/sandbox/abi-layout.ts`), and the hypercall.
#![allow(non_camel_case_types)]

use core::mem::{offset_of, size_of};

/// The binary interface this crate speaks, declared to the host by the first WAIT.
pub const TE_ABI_VERSION: u64 = 2;

pub const TE_CALL_WAIT: u32 = 1;
pub const TE_CALL_LOG: u32 = 2;
pub const TE_CALL_FETCH: u32 = 3;
pub const TE_CALL_KV_GET: u32 = 4;
pub const TE_CALL_KV_SET: u32 = 5;
pub const TE_CALL_KV_DELETE: u32 = 6;
pub const TE_CALL_KV_INCR: u32 = 7;
pub const TE_CALL_KV_CAS: u32 = 8;

/// `te_kv_cas.flags`: store only when the key is absent (`expected` is not read).
pub const TE_KV_CAS_ABSENT: u64 = 1;

pub const TE_PHASE_GENERATE: u32 = 0;
pub const TE_PHASE_RECV: u32 = 1;
pub const TE_PHASE_DELIVER: u32 = 2;

/// `te_request.flags`: the host's warm-up request after a load.
pub const TE_REQUEST_WARMUP: u32 = 1;
/// `te_request.flags`: a warm-up request before the snapshot (with `TE_REQUEST_WARMUP`).
pub const TE_REQUEST_PRESNAPSHOT: u32 = 2;
/// `te_request.flags`: answer with the state to hand the next version (`on_live_update`).
pub const TE_REQUEST_LIVE_UPDATE: u32 = 4;
/// `te_request.flags`: the body is the previous version's state (`on_live_restore`).
pub const TE_REQUEST_LIVE_RESTORE: u32 = 8;

pub const TE_RESPONDED: u32 = 1;
pub const TE_UNCACHEABLE: u32 = 2;
pub const TE_PASS: u32 = 4;
pub const TE_REWRITE_URL: u32 = 8;
/// Persistent programs: reset the instance to its snapshot after this response.
pub const TE_RESET_AFTER: u32 = 16;

/// Response headers the host accepts (docs/guest-abi.md, "Limits").
pub const TE_MAX_RESPONSE_HEADERS: usize = 256;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct te_str {
    pub ptr: *const u8,
    pub len: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct te_header {
    pub name: te_str,
    pub value: te_str,
}

#[repr(C)]
pub struct te_request {
    pub abi_version: u32,
    pub header_count: u32,
    pub method: te_str,
    pub url: te_str,
    pub path: te_str,
    pub query: te_str,
    pub body: te_str,
    pub headers: *const te_header,
    pub random: [u8; 32],
    pub phase: u32,
    pub resp_status: u32,
    pub resp_header_count: u32,
    pub flags: u32,
    pub resp_headers: *const te_header,
}

#[repr(C)]
pub struct te_response {
    pub status: u32,
    pub flags: u32,
    pub header_count: u32,
    pub reserved: u32,
    pub headers: *const te_header,
    pub body: te_str,
    pub ttl_ms: i64,
    pub grace_ms: i64,
    pub keep_ms: i64,
    pub tags: te_str,
    pub url: te_str,
}

/// What WAIT returns (ABI version 2): `count` requests to answer into their response slots, with
/// one WAIT for them all.
#[repr(C)]
pub struct te_batch {
    pub count: u32,
    pub current: u32,
    pub answered: u32,
    pub reserved: u32,
    pub requests: *const *const te_request,
    pub responses: *mut te_response,
}

#[repr(C)]
pub struct te_fetch {
    pub origin: te_str,
    pub method: te_str,
    pub url: te_str,
    pub headers: *const te_header,
    pub header_count: u64,
    pub body: te_str,
    pub resp_body: *mut u8,
    pub resp_body_cap: u64,
    pub resp_body_len: u64,
    pub resp_headers: *mut u8,
    pub resp_headers_cap: u64,
    pub resp_headers_len: u64,
}

#[repr(C)]
pub struct te_kv {
    pub key: te_str,
    pub value: *mut u8,
    pub value_cap: u64,
}

#[repr(C)]
pub struct te_kv_cas {
    pub key: te_str,
    pub expected: te_str,
    pub value: te_str,
    pub flags: u64,
}

macro_rules! field {
    ($t:ident, $f:ident, $n:expr) => {
        const _: () = assert!(
            offset_of!($t, $f) == $n,
            concat!(
                stringify!($t),
                ".",
                stringify!($f),
                " is at offset ",
                stringify!($n),
                " in the ABI"
            )
        );
    };
}
macro_rules! size {
    ($t:ident, $n:expr) => {
        const _: () = assert!(
            size_of::<$t>() == $n,
            concat!(
                "size of ",
                stringify!($t),
                " is ",
                stringify!($n),
                " in the ABI"
            )
        );
    };
}

field!(te_str, ptr, 0);
field!(te_str, len, 8);
size!(te_str, 16);
field!(te_header, name, 0);
field!(te_header, value, 16);
size!(te_header, 32);
field!(te_request, abi_version, 0);
field!(te_request, header_count, 4);
field!(te_request, method, 8);
field!(te_request, url, 24);
field!(te_request, path, 40);
field!(te_request, query, 56);
field!(te_request, body, 72);
field!(te_request, headers, 88);
field!(te_request, random, 96);
field!(te_request, phase, 128);
field!(te_request, resp_status, 132);
field!(te_request, resp_header_count, 136);
field!(te_request, flags, 140);
field!(te_request, resp_headers, 144);
size!(te_request, 152);
field!(te_response, status, 0);
field!(te_response, flags, 4);
field!(te_response, header_count, 8);
field!(te_response, headers, 16);
field!(te_response, body, 24);
field!(te_response, ttl_ms, 40);
field!(te_response, grace_ms, 48);
field!(te_response, keep_ms, 56);
field!(te_response, tags, 64);
field!(te_response, url, 80);
size!(te_response, 96);
field!(te_fetch, origin, 0);
field!(te_fetch, method, 16);
field!(te_fetch, url, 32);
field!(te_fetch, headers, 48);
field!(te_fetch, header_count, 56);
field!(te_fetch, body, 64);
field!(te_fetch, resp_body, 80);
field!(te_fetch, resp_body_cap, 88);
field!(te_fetch, resp_body_len, 96);
field!(te_fetch, resp_headers, 104);
field!(te_fetch, resp_headers_cap, 112);
field!(te_fetch, resp_headers_len, 120);
size!(te_fetch, 128);
field!(te_batch, count, 0);
field!(te_batch, current, 4);
field!(te_batch, answered, 8);
field!(te_batch, reserved, 12);
field!(te_batch, requests, 16);
field!(te_batch, responses, 24);
size!(te_batch, 32);
field!(te_kv, key, 0);
field!(te_kv, value, 16);
field!(te_kv, value_cap, 24);
size!(te_kv, 32);
field!(te_kv_cas, key, 0);
field!(te_kv_cas, expected, 16);
field!(te_kv_cas, value, 32);
field!(te_kv_cas, flags, 48);
size!(te_kv_cas, 56);

impl te_str {
    pub fn of(bytes: &[u8]) -> te_str {
        te_str {
            ptr: bytes.as_ptr(),
            len: bytes.len() as u64,
        }
    }

    /// The bytes the host laid out.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a` (the host's request memory does,
    /// until the next WAIT).
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.len == 0 || self.ptr.is_null() {
            &[]
        } else {
            core::slice::from_raw_parts(self.ptr, self.len as usize)
        }
    }
}

/// A hypercall: `out` to port 0x80 with the call number in EAX, arguments in RDI and RSI; the
/// result comes back in RAX (docs/guest-abi.md, "Hypercalls").
///
/// # Safety
/// The arguments must be what the call expects: pointers to valid structures and buffers, which
/// the host may write (FETCH, KV_GET) before the call returns.
#[inline(always)]
pub unsafe fn hypercall(call: u32, a: u64, b: u64) -> i64 {
    let ret: i64;
    core::arch::asm!("out 0x80, al", inlateout("rax") call as i64 => ret, in("rdi") a, in("rsi") b, options(nostack));
    ret
}
