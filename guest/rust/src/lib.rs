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
use sys::{hypercall, te_request, te_response, TE_ABI_VERSION, TE_CALL_WAIT};

fn wait(response: Option<&te_response>, version: u64) -> &'static te_request {
    let at = response.map_or(0, |r| r as *const te_response as u64);
    // The host answers with the next request's address, in memory it wrote for it.
    unsafe { &*(hypercall(TE_CALL_WAIT, at, version) as *const te_request) }
}

/// Ends initialisation (the snapshot is taken here) and answers every request with `handler`.
/// A handler that panics answers 500 (uncacheable); the panic message goes to the log.
pub fn serve<F>(mut handler: F) -> !
where
    F: FnMut(&Request<'_>) -> Response,
{
    let mut raw = wait(None, TE_ABI_VERSION);
    loop {
        let request = unsafe { Request::from_raw(raw) };
        let response = catch_unwind(AssertUnwindSafe(|| handler(&request)))
            .unwrap_or_else(|_| Response::text(500, "internal error\n").uncacheable());
        let published = Published::new(response);
        raw = wait(Some(published.raw()), 0);
    }
}
