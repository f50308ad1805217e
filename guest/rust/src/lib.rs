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
use std::cell::RefCell;
use sys::{
    hypercall, te_batch, TE_ABI_VERSION, TE_CALL_WAIT, TE_REQUEST_LIVE_RESTORE, TE_REQUEST_LIVE_UPDATE,
    TE_RESET_AFTER,
};

type SaveFn = Box<dyn FnMut() -> Vec<u8>>;
type RestoreFn = Box<dyn FnMut(&[u8])>;

thread_local! {
    static LIVE_UPDATE: RefCell<Option<SaveFn>> = RefCell::new(None);
    static LIVE_RESTORE: RefCell<Option<RestoreFn>> = RefCell::new(None);
}

/// A persistent program's state across a live upload: when a new version replaces this one,
/// `save` runs in one instance of this version, and the bytes it returns (empty: none) go to the
/// new version's [`on_live_restore`] callback before its snapshot. Register before [`serve`].
pub fn on_live_update(save: impl FnMut() -> Vec<u8> + 'static) {
    LIVE_UPDATE.with(|f| *f.borrow_mut() = Some(Box::new(save)));
}

/// Takes the state the previous version handed over, before this version's snapshot.
pub fn on_live_restore(restore: impl FnMut(&[u8]) + 'static) {
    LIVE_RESTORE.with(|f| *f.borrow_mut() = Some(Box::new(restore)));
}

/// The SDK's answer to the host's live-update requests (the handler never sees them).
fn live(request: &Request<'_>) -> Response {
    if request.flags() & TE_REQUEST_LIVE_UPDATE != 0 {
        let state = LIVE_UPDATE.with(|f| f.borrow_mut().as_mut().map(|save| save()));
        return match state {
            Some(bytes) if !bytes.is_empty() => Response::new(200).body(bytes),
            _ => Response::new(204),
        };
    }
    LIVE_RESTORE.with(|f| {
        if let Some(restore) = f.borrow_mut().as_mut() {
            restore(request.body());
        }
    });
    Response::new(204)
}

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
            let live_call = request.flags() & (TE_REQUEST_LIVE_UPDATE | TE_REQUEST_LIVE_RESTORE) != 0;
            let response = catch_unwind(AssertUnwindSafe(|| {
                if live_call {
                    live(&request)
                } else {
                    handler(&request)
                }
            }))
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
