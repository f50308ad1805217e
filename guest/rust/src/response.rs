//! What a handler returns: a response that owns its data, or a hook's decisions.

use std::time::Duration;

use crate::sys::{
    te_header, te_response, te_str, TE_MAX_RESPONSE_HEADERS, TE_PASS, TE_RESET_AFTER, TE_RESPONDED,
    TE_REWRITE_URL, TE_UNCACHEABLE,
};

/// A response. `Response::default()` has no status: it answers nothing, which is what a hook
/// returns to let the request go on (recv: to the lookup; deliver: to the client) with the headers
/// it sets. In the generate phase a status is required.
#[derive(Clone, Debug, Default)]
#[must_use = "a Response does nothing until the handler returns it"]
pub struct Response {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    ttl: Option<Duration>,
    grace: Option<Duration>,
    keep: Option<Duration>,
    tags: Vec<String>,
    flags: u32,
    url: Option<String>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status: Some(status),
            ..Response::default()
        }
    }

    /// A `text/plain` answer.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// Adds a header (recv: a request header to set; deliver: a response header to set; an empty
    /// value removes it).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// How long the cache may serve this response fresh (unset: the host's policy decides).
    pub fn ttl(mut self, ttl: Duration) -> Response {
        self.ttl = Some(ttl);
        self
    }

    /// How long after the TTL a stale copy may still be served while a fresh one is fetched.
    pub fn grace(mut self, grace: Duration) -> Response {
        self.grace = Some(grace);
        self
    }

    /// How long after TTL and grace the object is kept for revalidation.
    pub fn keep(mut self, keep: Duration) -> Response {
        self.keep = Some(keep);
        self
    }

    /// Adds a cache tag, for tag invalidation.
    pub fn tag(mut self, tag: impl Into<String>) -> Response {
        self.tags.push(tag.into());
        self
    }

    pub fn uncacheable(mut self) -> Response {
        self.flags |= TE_UNCACHEABLE;
        self
    }

    /// Persistent programs: the instance goes back to its snapshot after this response, so the
    /// next request starts afresh (`te_reset_after()` in C).
    pub fn reset_after(mut self) -> Response {
        self.flags |= TE_RESET_AFTER;
        self
    }

    /// Recv: bypass the cache for this request.
    pub fn pass(mut self) -> Response {
        self.flags |= TE_PASS;
        self
    }

    /// Recv: look up and fetch another URL (path and query) instead.
    pub fn rewrite_url(mut self, url: impl Into<String>) -> Response {
        self.flags |= TE_REWRITE_URL;
        self.url = Some(url.into());
        self
    }
}

/// A response laid out for the host: the te_response and the data its pointers point into, heap
/// buffers that stay put when this moves. It must live until the host has read it (the next WAIT).
pub(crate) struct Published {
    raw: te_response,
    _headers: Vec<te_header>,
    _tags: String,
    _response: Response,
}

fn millis(d: Option<Duration>) -> i64 {
    d.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Published {
    pub(crate) fn new(response: Response) -> Published {
        let tags = response.tags.join(" ");
        let headers: Vec<te_header> = response
            .headers
            .iter()
            .take(TE_MAX_RESPONSE_HEADERS)
            .map(|(n, v)| te_header {
                name: te_str::of(n.as_bytes()),
                value: te_str::of(v.as_bytes()),
            })
            .collect();
        let raw = te_response {
            status: response.status.map_or(0, u32::from),
            flags: response.flags
                | if response.status.is_some() {
                    TE_RESPONDED
                } else {
                    0
                },
            header_count: headers.len() as u32,
            reserved: 0,
            headers: headers.as_ptr(),
            body: te_str::of(&response.body),
            ttl_ms: millis(response.ttl),
            grace_ms: millis(response.grace),
            keep_ms: millis(response.keep),
            tags: te_str::of(tags.as_bytes()),
            url: te_str::of(response.url.as_deref().unwrap_or("").as_bytes()),
        };
        Published {
            raw,
            _headers: headers,
            _tags: tags,
            _response: response,
        }
    }

    pub(crate) fn raw(&self) -> &te_response {
        &self.raw
    }

    /// The te_response for a slot: its pointers stay valid while this lives.
    pub(crate) fn raw_copy(&self) -> te_response {
        te_response { ..self.raw }
    }
}
