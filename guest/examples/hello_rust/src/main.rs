//! hello_rust: the Rust SDK (guest/rust). Greets the `name` query parameter, cached for a minute
//! under the tag "greetings"; what main() prepares before `serve` is frozen in the snapshot.
use std::time::Duration;

use tinyedge::{Request, Response};

fn main() {
    let greeting = String::from("hello");
    tinyedge::serve(move |req: &Request| {
        let name = req.query_param("name").unwrap_or_else(|| "world".into());
        Response::text(200, format!("{greeting}, {name}\n"))
            .ttl(Duration::from_secs(60))
            .grace(Duration::from_secs(10))
            .tag("greetings")
    });
}
