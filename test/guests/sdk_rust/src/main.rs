//! The Rust SDK (guest/rust) on every path, by URL path:
//!   /echo      method, path, query, a header, the body and the `name` query parameter
//!   /fetch     a sub-request to the default origin: status, a header, body, truncation (502 errno=N when refused)
//!   /kv        kv::set, kv::get (a value over the first buffer), kv::delete twice, kv::get absent
//!   /kv-full   kv::set over the quota: the Error's errno
//!   /kv-atomic kv::increment twice, kv::compare_and_set over a value and over absence, and the
//!              Error of an increment of a value that is not an integer
//!   /fail      a handler that panics: 500
//!   /cache     cache policy and tags
//!   recv: /pass -> pass, /old/x -> rewrite to /new/x with a header; deliver: a header with the status
//!
//! It starts from C's main (`#![no_main]`), not Rust's: what it tests is the SDK, whatever Rust's
//! own start-up asks of the system (guest/examples/hello_rust starts the usual way).
#![no_main]

use std::time::Duration;

use tinyedge::{kv, Fetch, Phase, Request, Response};

fn generate(req: &Request, init: &str) -> Response {
    match req.path() {
        "/echo" => Response::text(
            200,
            format!(
                "{} {} query={} x-test={} name={} body={} init={}\n",
                req.method(),
                req.path(),
                req.query(),
                req.header("X-TEST").unwrap_or("(none)"),
                req.query_param("name").unwrap_or_else(|| "(none)".into()),
                String::from_utf8_lossy(req.body()),
                init
            ),
        ),
        "/fetch" => match Fetch::get("/data")
            .header("X-From", "rust")
            .max_body(5)
            .send()
        {
            Ok(r) => {
                let kind = r
                    .headers
                    .iter()
                    .find(|(n, _)| n == "content-type")
                    .map_or("", |(_, v)| v.as_str());
                Response::text(
                    200,
                    format!(
                        "status={} type={} body={} truncated={}\n",
                        r.status,
                        kind,
                        String::from_utf8_lossy(&r.body),
                        if r.truncated { "yes" } else { "no" }
                    ),
                )
            }
            Err(e) => Response::text(502, format!("errno={}\n", e.errno)),
        },
        "/kv" => {
            let big = vec![b'x'; 5000];
            kv::set("big", &big).unwrap();
            let got = kv::get("big").unwrap().unwrap_or_default();
            let first = kv::delete("big").unwrap();
            let second = kv::delete("big").unwrap();
            let after = kv::get("big").unwrap();
            let yes = |b: bool| if b { "yes" } else { "no" };
            Response::text(
                200,
                format!(
                    "len={} same={} deleted={},{} after={}\n",
                    got.len(),
                    yes(got == big),
                    yes(first),
                    yes(second),
                    if after.is_some() { "present" } else { "absent" }
                ),
            )
        }
        "/kv-atomic" => {
            let a = kv::increment("n", 5).unwrap();
            let b = kv::increment("n", -2).unwrap();
            let over = kv::compare_and_set("n", Some(b"3"), b"30").unwrap();
            let stale = kv::compare_and_set("n", Some(b"3"), b"x").unwrap();
            let fresh = kv::compare_and_set("word", None, b"v").unwrap();
            let again = kv::compare_and_set("word", None, b"w").unwrap();
            let notnum = kv::increment("word", 1).map_or_else(|e| e.errno, |_| 0);
            let n = kv::get("n").unwrap().unwrap_or_default();
            let yes = |b: bool| if b { "yes" } else { "no" };
            Response::text(
                200,
                format!(
                    "incr={a},{b} cas={},{} absent={},{} n={} notnum={notnum}\n",
                    yes(over),
                    yes(stale),
                    yes(fresh),
                    yes(again),
                    String::from_utf8_lossy(&n)
                ),
            )
        }
        "/kv-full" => match kv::set("k", &[b'v'; 2000]) {
            Ok(()) => Response::text(200, "stored\n"),
            Err(e) => Response::text(507, format!("errno={} what={}\n", e.errno, e)),
        },
        "/fail" => panic!("no such thing"),
        "/cache" => Response::text(200, "cached\n")
            .ttl(Duration::from_secs(60))
            .grace(Duration::from_secs(10))
            .keep(Duration::from_secs(5))
            .tag("a")
            .tag("b"),
        _ => Response::text(404, "not found\n"),
    }
}

#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
    let init = String::from("yes");
    tinyedge::serve(move |req: &Request| match req.phase() {
        Phase::Recv if req.path() == "/pass" => Response::default().pass(),
        Phase::Recv if req.path().starts_with("/old/") => Response::default()
            .rewrite_url(format!("/new/{}", &req.url()[5..]))
            .header("X-Recv", "rust"),
        Phase::Recv => Response::default(),
        Phase::Deliver => {
            Response::default().header("X-Delivered", format!("status-{}", req.response_status()))
        }
        Phase::Generate => generate(req, &init),
    })
}
