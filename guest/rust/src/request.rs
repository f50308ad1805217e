//! The request a handler gets: views of the host's copy in guest memory, valid while it runs.

use crate::decode;
use crate::sys::{
    te_header, te_request, TE_PHASE_DELIVER, TE_PHASE_RECV, TE_REQUEST_PRESNAPSHOT, TE_REQUEST_WARMUP,
};

/// Why the program is called: a program configured as a hook sees `Recv` or `Deliver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Produce the response (the backend of a route).
    Generate,
    /// Before the cache lookup: pass, rewrite, set request headers, or answer.
    Recv,
    /// Before delivery: set response headers.
    Deliver,
}

/// An HTTP request. Strings are UTF-8 as the host writes them; bytes that are not read as "".
pub struct Request<'a> {
    raw: &'a te_request,
}

impl<'a> Request<'a> {
    /// # Safety
    /// `raw` must be the host's te_request for the current request (its pointers valid for `'a`).
    pub(crate) unsafe fn from_raw(raw: &'a te_request) -> Request<'a> {
        Request { raw }
    }

    fn text(bytes: &'a [u8]) -> &'a str {
        core::str::from_utf8(bytes).unwrap_or("")
    }

    pub fn method(&self) -> &'a str {
        Self::text(unsafe { self.raw.method.bytes() })
    }

    /// Path and query, as received.
    pub fn url(&self) -> &'a str {
        Self::text(unsafe { self.raw.url.bytes() })
    }

    pub fn path(&self) -> &'a str {
        Self::text(unsafe { self.raw.path.bytes() })
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> &'a str {
        Self::text(unsafe { self.raw.query.bytes() })
    }

    pub fn body(&self) -> &'a [u8] {
        unsafe { self.raw.body.bytes() }
    }

    pub fn phase(&self) -> Phase {
        match self.raw.phase {
            TE_PHASE_RECV => Phase::Recv,
            TE_PHASE_DELIVER => Phase::Deliver,
            _ => Phase::Generate,
        }
    }

    /// True for the host's warm-up requests (after a load, and before the snapshot), false for a client's.
    pub fn is_warmup(&self) -> bool {
        self.raw.flags & TE_REQUEST_WARMUP != 0
    }

    /// `te_request.flags` as the host wrote them.
    pub fn flags(&self) -> u32 {
        self.raw.flags
    }

    /// True for a warm-up request before the snapshot (config `warmup`): what it leaves in memory
    /// is in every instance.
    pub fn is_presnapshot(&self) -> bool {
        self.raw.flags & TE_REQUEST_PRESNAPSHOT != 0
    }

    /// 32 bytes of fresh entropy for this request.
    pub fn random(&self) -> &'a [u8; 32] {
        &self.raw.random
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header, in the client's order and case.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        Self::pairs(self.raw.headers, self.raw.header_count)
    }

    /// Deliver: the status of the response about to be delivered.
    pub fn response_status(&self) -> u16 {
        self.raw.resp_status as u16
    }

    /// Deliver: the headers of the response about to be delivered.
    pub fn response_headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        Self::pairs(self.raw.resp_headers, self.raw.resp_header_count)
    }

    /// The first query parameter named `name`, form-decoded; `None` when absent, when its value
    /// has a malformed escape, or when it is not UTF-8 (see `query_param_bytes`).
    pub fn query_param(&self, name: &str) -> Option<String> {
        String::from_utf8(self.query_param_bytes(name)?).ok()
    }

    /// The first query parameter named `name`, form-decoded, as bytes (`%00` included).
    pub fn query_param_bytes(&self, name: &str) -> Option<Vec<u8>> {
        decode::query_param(self.query().as_bytes(), name)
    }

    fn pairs(at: *const te_header, count: u32) -> impl Iterator<Item = (&'a str, &'a str)> {
        let headers: &'a [te_header] = if count == 0 || at.is_null() {
            &[]
        } else {
            unsafe { core::slice::from_raw_parts(at, count as usize) }
        };
        headers.iter().map(|h| {
            (
                Self::text(unsafe { h.name.bytes() }),
                Self::text(unsafe { h.value.bytes() }),
            )
        })
    }
}
