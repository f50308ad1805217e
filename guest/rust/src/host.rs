//! Host calls during a request: sub-requests to the tenant's origins, the tenant's key-value
//! store, and the request's log. Each returns the host's errno as an `Error`.

use core::fmt;

use crate::sys::{hypercall, te_fetch, te_header, te_kv, te_str, TE_CALL_FETCH, TE_CALL_LOG};

const ENOENT: i32 = 2;

/// A host call the host refused or could not make: `errno` is Linux's number (28 ENOSPC over the
/// tenant's quota, 7 E2BIG over a limit, 5 EIO when the origin or store failed, 38 ENOSYS where
/// the host offers no such service, as under `tinyedge dev`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    pub errno: i32,
}

impl Error {
    fn check(result: i64) -> Result<i64, Error> {
        if result < 0 {
            Err(Error {
                errno: (-result) as i32,
            })
        } else {
            Ok(result)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host call failed: {}",
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

impl std::error::Error for Error {}

/// Adds a line to the request's log (the host keeps 4 KiB of it).
pub fn log(text: &str) {
    unsafe { hypercall(TE_CALL_LOG, text.as_ptr() as u64, text.len() as u64) };
}

/// A sub-request to one of the tenant's origins, built then `send()`.
#[derive(Clone, Debug)]
#[must_use = "a Fetch does nothing until `send()`"]
pub struct Fetch {
    origin: String,
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    max_body: usize,
    max_headers: usize,
}

/// An origin's answer to a sub-request.
#[derive(Clone, Debug)]
pub struct FetchResponse {
    pub status: u16,
    /// As the origin sent them, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body was longer than `max_body`: `body` holds its start.
    pub truncated: bool,
}

impl Fetch {
    /// A GET of `url` (path and query) from the default origin.
    pub fn get(url: impl Into<String>) -> Fetch {
        Fetch {
            origin: String::new(),
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            max_body: 1 << 20,
            max_headers: 16 << 10,
        }
    }

    /// The origin's name in the tenant's config.
    pub fn origin(mut self, name: impl Into<String>) -> Fetch {
        self.origin = name.into();
        self
    }

    pub fn method(mut self, method: impl Into<String>) -> Fetch {
        self.method = method.into();
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Fetch {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Fetch {
        self.body = body.into();
        self
    }

    /// Bytes of the origin's body kept (default 1 MiB; the host reads at most 8 MiB).
    pub fn max_body(mut self, bytes: usize) -> Fetch {
        self.max_body = bytes;
        self
    }

    /// Makes the sub-request.
    ///
    /// # Errors
    /// The host's errno: 5 EIO when the origin failed, 90 EMSGSIZE over a limit, 38 ENOSYS
    /// where the host offers no origins.
    pub fn send(&self) -> Result<FetchResponse, Error> {
        let headers: Vec<te_header> = self
            .headers
            .iter()
            .map(|(n, v)| te_header {
                name: te_str::of(n.as_bytes()),
                value: te_str::of(v.as_bytes()),
            })
            .collect();
        let mut body = vec![0u8; self.max_body];
        let mut head = vec![0u8; self.max_headers];
        let mut call = te_fetch {
            origin: te_str::of(self.origin.as_bytes()),
            method: te_str::of(self.method.as_bytes()),
            url: te_str::of(self.url.as_bytes()),
            headers: headers.as_ptr(),
            header_count: headers.len() as u64,
            body: te_str::of(&self.body),
            resp_body: body.as_mut_ptr(),
            resp_body_cap: body.len() as u64,
            resp_body_len: 0,
            resp_headers: head.as_mut_ptr(),
            resp_headers_cap: head.len() as u64,
            resp_headers_len: 0,
        };
        let status = Error::check(unsafe {
            hypercall(TE_CALL_FETCH, &mut call as *mut te_fetch as u64, 0)
        })?;
        let truncated = call.resp_body_len > call.resp_body_cap;
        body.truncate(call.resp_body_len.min(call.resp_body_cap) as usize);
        head.truncate(call.resp_headers_len.min(call.resp_headers_cap) as usize);
        // "name: value\n" lines; a last line cut by the buffer has no '\n' and is left out.
        let text = String::from_utf8_lossy(&head);
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines.pop();
        let headers = lines
            .iter()
            .filter_map(|line| line.split_once(": "))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        Ok(FetchResponse {
            status: status as u16,
            headers,
            body,
            truncated,
        })
    }
}

fn kv_call(call: u32, key: &str, value: *mut u8, len: usize) -> i64 {
    let mut kv = te_kv {
        key: te_str::of(key.as_bytes()),
        value,
        value_cap: len as u64,
    };
    unsafe { hypercall(call, &mut kv as *mut te_kv as u64, 0) }
}

/// The tenant's key-value store: it survives requests, resets and program upgrades.
pub mod kv {
    use super::{kv_call, Error, ENOENT};
    use crate::sys::{
        hypercall, te_kv_cas, te_str, TE_CALL_KV_CAS, TE_CALL_KV_DELETE, TE_CALL_KV_GET,
        TE_CALL_KV_INCR, TE_CALL_KV_SET, TE_KV_CAS_ABSENT,
    };

    /// The value under `key`, or `None` when absent.
    ///
    /// # Errors
    /// The host's errno (7 E2BIG for a key over 1024 bytes, 5 EIO, 38 ENOSYS, ...).
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, Error> {
        let mut value = vec![0u8; 4096];
        // The value may change between two calls: ask again until the buffer held all of it.
        loop {
            let n = kv_call(TE_CALL_KV_GET, key, value.as_mut_ptr(), value.len());
            if n == -i64::from(ENOENT) {
                return Ok(None);
            }
            let n = Error::check(n)? as usize;
            let whole = n <= value.len();
            value.resize(n, 0);
            if whole {
                return Ok(Some(value));
            }
        }
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// The host's errno: 28 ENOSPC over the tenant's quota, 7 E2BIG over 1 MiB, ...
    pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
        Error::check(kv_call(
            TE_CALL_KV_SET,
            key,
            value.as_ptr() as *mut u8,
            value.len(),
        ))
        .map(|_| ())
    }

    /// Deletes `key`; false when it was absent.
    ///
    /// # Errors
    /// The host's errno (5 EIO, 38 ENOSYS, ...).
    pub fn delete(key: &str) -> Result<bool, Error> {
        let r = kv_call(TE_CALL_KV_DELETE, key, core::ptr::null_mut(), 0);
        if r == -i64::from(ENOENT) {
            return Ok(false);
        }
        Error::check(r).map(|_| true)
    }

    /// Adds `delta` to the counter under `key` in one step of the store (no other request, on any
    /// shard, interleaves with it) and returns the new value. The counter is a signed 64-bit
    /// integer stored as decimal text; an absent key counts as 0.
    ///
    /// # Errors
    /// The host's errno: 22 EINVAL when the value is not such an integer, 34 ERANGE when the sum
    /// would overflow (nothing changes), 28 ENOSPC over the tenant's quota, ...
    pub fn increment(key: &str, delta: i64) -> Result<i64, Error> {
        let mut value = delta;
        Error::check(kv_call(
            TE_CALL_KV_INCR,
            key,
            (&mut value as *mut i64).cast::<u8>(),
            core::mem::size_of::<i64>(),
        ))?;
        Ok(value)
    }

    /// Stores `value` under `key` only if it holds exactly `expected` (`None`: only if it is
    /// absent), in one step of the store; `Ok(false)` when it held something else.
    ///
    /// # Errors
    /// The host's errno: 28 ENOSPC over the tenant's quota, 7 E2BIG over 1 MiB, ...
    pub fn compare_and_set(
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, Error> {
        let mut cas = te_kv_cas {
            key: te_str::of(key.as_bytes()),
            expected: te_str::of(expected.unwrap_or(&[])),
            value: te_str::of(value),
            flags: if expected.is_some() {
                0
            } else {
                TE_KV_CAS_ABSENT
            },
        };
        // SAFETY: every pointer in `cas` is to memory that lives until the call returns.
        let r = unsafe { hypercall(TE_CALL_KV_CAS, &mut cas as *mut te_kv_cas as u64, 0) };
        Error::check(r).map(|n| n == 1)
    }
}
