//! The tinyedge guest SDK for Rust: a program hands a closure to [`serve`], which answers every
//! request with it. No dependencies; the ABI is in docs/guest-abi.md.
//!
//! ```no_run
//! use std::time::Duration;
//! use tinyedge::{Request, Response};
//!
//! fn main() {
//!     let greeting = String::from("hello"); // prepared once, frozen in the snapshot
//!     tinyedge::serve(move |req: &Request| {
//!         let name = req.query_param("name").unwrap_or_else(|| "world".into());
//!         Response::text(200, format!("{greeting}, {name}\n")).ttl(Duration::from_secs(60)).tag("greetings")
//!     });
//! }
//! ```
//!
//! `serve` ends initialisation: the host takes the program's snapshot there, and every request
//! runs in an instance reset to it afterwards, so nothing a request changes survives it (unless
//! the program's lifecycle is persistent; see [`Response::reset_after`]). Run the
//! program with `tinyedge dev`, or as a program of `tinyedge serve`.

mod decode;
mod host;
mod request;
mod response;
pub mod sys;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use decode::percent_decode;
pub use host::{kv, log, Error, Fetch, FetchResponse};
pub use request::{Phase, Request};
pub use response::Response;

use response::Published;
use sys::{hypercall, te_batch, TE_ABI_VERSION, TE_CALL_WAIT, TE_RESET_AFTER};

/// Hands the answered batch back (none the first time) and gets the next, in memory the host wrote.
fn wait(batch: *mut te_batch, version: u64) -> *mut te_batch {
    unsafe { hypercall(TE_CALL_WAIT, batch as u64, version) as *mut te_batch }
}

/// Ends initialisation (the snapshot is taken here) and answers every request with `handler`:
/// each WAIT hands over a batch, answered one request after another, each response in its own
/// slot, with one WAIT for them all. A handler that panics answers 500 (uncacheable); the panic
/// message goes to the log.
pub fn serve<F>(mut handler: F) -> !
where
    F: FnMut(&Request<'_>) -> Response,
{
    let mut batch = wait(core::ptr::null_mut(), TE_ABI_VERSION);
    // The responses of a batch live here until its WAIT: their bytes are what the slots point to.
    let mut kept: Vec<Published> = Vec::new();
    loop {
        let b = unsafe { &mut *batch };
        let mut answered = 0;
        while answered < b.count {
            unsafe { core::ptr::write_volatile(&mut b.current, answered) };
            let raw = unsafe { &**b.requests.add(answered as usize) };
            let request = unsafe { Request::from_raw(raw) };
            let response = catch_unwind(AssertUnwindSafe(|| handler(&request)))
                .unwrap_or_else(|_| Response::text(500, "internal error\n").uncacheable());
            let published = Published::new(response);
            unsafe { b.responses.add(answered as usize).write(published.raw_copy()) };
            answered += 1;
            let reset = published.raw().flags & TE_RESET_AFTER != 0;
            kept.push(published);
            if reset {
                break;
            }
        }
        b.answered = answered;
        batch = wait(batch, 0);
        kept.clear();
    }
}
