/*
 * tinyedge.hpp — the guest SDK for C++17: the C SDK (tinyedge.h) behind a request with
 * std::string_view accessors, a response that owns its strings, and host calls that throw.
 * Header only, like tinyedge.h; any number of a program's files may include it.
 *
 *     #include <tinyedge.hpp>
 *     int main() {
 *         tinyedge::serve([](const tinyedge::Request &req) {
 *             std::string name = req.query_param("name").value_or("world");
 *             return tinyedge::Response(200)
 *                 .header("Content-Type", "text/plain")
 *                 .body("hello, " + name + "\n")
 *                 .cache(60, 10);
 *         });
 *     }
 *
 * serve() ends initialisation (the snapshot is taken there) and calls the handler for each
 * request. The handler's Response lives until the host has read it. An exception that leaves the
 * handler answers 500 (uncacheable) and logs its message. Host calls (fetch, kv_*) throw
 * HostError with the host's errno; kv_get and kv_delete answer "absent" without throwing, and
 * kv_compare_and_set "another value" (false).
 */
#ifndef TINYEDGE_HPP
#define TINYEDGE_HPP

#include <tinyedge.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinyedge {

/** Why the program is called (a program configured as a hook sees recv or deliver). */
enum class Phase : std::uint32_t { generate = TE_PHASE_GENERATE, recv = TE_PHASE_RECV, deliver = TE_PHASE_DELIVER };

/** A header as the host laid it out: views of request memory, valid during the request. */
struct Header {
    std::string_view name;
    std::string_view value;
};

inline std::string_view view(te_str s) { return s.len == 0 ? std::string_view() : std::string_view(s.ptr, static_cast<std::size_t>(s.len)); }

inline te_str str(std::string_view s) { return te_str{s.data(), s.size()}; }

/** A host call the host refused or could not make; error() is the errno (ENOSPC, E2BIG, EIO, ENOSYS, ...). */
class HostError : public std::runtime_error {
public:
    HostError(const char *call, long result)
        : std::runtime_error(std::string(call) + ": " + std::strerror(static_cast<int>(-result))), error_(static_cast<int>(-result)) {}
    int error() const noexcept { return error_; }

private:
    int error_;
};

/** Decodes %XX escapes (and '+' as a space with `plus`); nullopt for a '%' without two hex digits. */
inline std::optional<std::string> percent_decode(std::string_view s, bool plus = false) {
    std::string out(s.size() + 1, '\0');
    long n = te_percent_decode(s.data(), s.size(), &out[0], out.size(), TE_DECODE_ALLOW_NUL | (plus ? TE_DECODE_PLUS : 0u));
    if (n < 0) return std::nullopt;
    out.resize(static_cast<std::size_t>(n));
    return out;
}

/** The request being handled: views of the host's copy, valid until the handler returns. */
class Request {
public:
    explicit Request(const te_request &raw) : raw_(raw) {}

    std::string_view method() const { return view(raw_.method); }
    /** Path and query, as received. */
    std::string_view url() const { return view(raw_.url); }
    std::string_view path() const { return view(raw_.path); }
    /** Without the '?'. */
    std::string_view query() const { return view(raw_.query); }
    std::string_view body() const { return view(raw_.body); }
    Phase phase() const { return static_cast<Phase>(raw_.phase); }
    /** The host's warm-up request after a load, not a client's. */
    bool warmup() const { return te_is_warmup(&raw_); }
    /** A warm-up request before the snapshot (config `warmup`): what it leaves is in every instance. */
    bool presnapshot() const { return te_is_presnapshot(&raw_); }
    /** 32 bytes of fresh entropy for this request. */
    std::string_view random() const { return std::string_view(reinterpret_cast<const char *>(raw_.random), sizeof raw_.random); }

    /** The first header named `name` (case-insensitive), or nullopt. */
    std::optional<std::string_view> header(std::string_view name) const { return find(raw_.headers, raw_.header_count, name); }
    std::vector<Header> headers() const { return list(raw_.headers, raw_.header_count); }

    /** deliver: the status and headers of the response about to be delivered. */
    int response_status() const { return static_cast<int>(raw_.resp_status); }
    std::optional<std::string_view> response_header(std::string_view name) const { return find(raw_.resp_headers, raw_.resp_header_count, name); }
    std::vector<Header> response_headers() const { return list(raw_.resp_headers, raw_.resp_header_count); }

    /**
     * The first query parameter named `name`, form-decoded; nullopt when absent or when its value
     * has a malformed escape. Unlike te_query_param, a %00 in the value is kept (a std::string
     * holds any byte).
     */
    std::optional<std::string> query_param(std::string_view name) const {
        std::string_view q = query();
        while (true) {
            std::size_t end = q.find('&');
            std::string_view pair = q.substr(0, end);
            std::size_t eq = pair.find('=');
            if (!pair.empty() && percent_decode(pair.substr(0, eq), true) == std::optional<std::string>(std::string(name))) {
                return percent_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
            }
            if (end == std::string_view::npos) return std::nullopt;
            q.remove_prefix(end + 1);
        }
    }

    const te_request &raw() const { return raw_; }

private:
    static bool same(std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); i++) {
            char x = a[i], y = b[i];
            if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
            if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
            if (x != y) return false;
        }
        return true;
    }
    static std::optional<std::string_view> find(const te_header *h, std::uint32_t count, std::string_view name) {
        for (std::uint32_t i = 0; i < count; i++) {
            if (same(view(h[i].name), name)) return view(h[i].value);
        }
        return std::nullopt;
    }
    static std::vector<Header> list(const te_header *h, std::uint32_t count) {
        std::vector<Header> out;
        out.reserve(count);
        for (std::uint32_t i = 0; i < count; i++) out.push_back(Header{view(h[i].name), view(h[i].value)});
        return out;
    }

    const te_request &raw_;
};

/**
 * A response, or a hook's decisions: it owns its strings. Without a status it answers nothing
 * (recv: the request goes on to the lookup, with the headers set; deliver: the headers are set on
 * the response); in generate a status is required. Setters chain on temporaries and variables.
 */
class Response {
public:
    Response() = default;
    explicit Response(int status) : status_(status) {}

    /** A text/plain answer. */
    static Response text(int status, std::string body) { return Response(status).header("Content-Type", "text/plain; charset=utf-8").body(std::move(body)); }

    Response &status(int s) & { status_ = s; return *this; }
    Response &&status(int s) && { return std::move(status(s)); }
    /** Adds a header (recv/deliver: sets it; an empty value removes it). */
    Response &header(std::string name, std::string value) & { headers_.emplace_back(std::move(name), std::move(value)); return *this; }
    Response &&header(std::string name, std::string value) && { return std::move(header(std::move(name), std::move(value))); }
    Response &body(std::string b) & { body_ = std::move(b); return *this; }
    Response &&body(std::string b) && { return std::move(body(std::move(b))); }
    /** Cache policy in seconds (fractions allowed); a negative value leaves that one to the host. */
    Response &cache(double ttl, double grace = -1, double keep = -1) & { ttl_ = ttl; grace_ = grace; keep_ = keep; return *this; }
    Response &&cache(double ttl, double grace = -1, double keep = -1) && { return std::move(cache(ttl, grace, keep)); }
    /** Adds a cache tag, for tag invalidation. */
    Response &tag(std::string t) & { tags_ += tags_.empty() ? t : " " + t; return *this; }
    Response &&tag(std::string t) && { return std::move(tag(std::move(t))); }
    Response &uncacheable() & { flags_ |= TE_UNCACHEABLE; return *this; }
    Response &&uncacheable() && { return std::move(uncacheable()); }
    /** Persistent programs: reset the instance to its snapshot after this response (te_reset_after()). */
    Response &reset_after() & { flags_ |= TE_RESET_AFTER; return *this; }
    Response &&reset_after() && { return std::move(reset_after()); }
    /** recv: bypass the cache. */
    Response &pass() & { flags_ |= TE_PASS; return *this; }
    Response &&pass() && { return std::move(pass()); }
    /** recv: look up and fetch another URL (path and query). */
    Response &rewrite_url(std::string url) & { flags_ |= TE_REWRITE_URL; url_ = std::move(url); return *this; }
    Response &&rewrite_url(std::string url) && { return std::move(rewrite_url(std::move(url))); }

    /** Points the SDK's te_response at this object's strings: it must outlive the handler's return. */
    void publish() const {
        te__reset_response();
        te_response &r = te__response;
        if (status_) { r.status = static_cast<std::uint32_t>(*status_); r.flags |= TE_RESPONDED; }
        r.flags |= flags_;
        std::size_t n = headers_.size() < TE_MAX_RESPONSE_HEADERS ? headers_.size() : TE_MAX_RESPONSE_HEADERS;
        for (std::size_t i = 0; i < n; i++) te__headers[i] = te_header{str(headers_[i].first), str(headers_[i].second)};
        r.header_count = static_cast<std::uint32_t>(n);
        r.body = str(body_);
        r.tags = str(tags_);
        r.url = str(url_);
        te_cache(ttl_, grace_, keep_);
    }

private:
    std::optional<int> status_;
    std::uint32_t flags_ = 0;
    std::vector<std::pair<std::string, std::string>> headers_;
    std::string body_;
    std::string tags_;
    std::string url_;
    double ttl_ = -1, grace_ = -1, keep_ = -1;
};

/** Appends a line to the request's log. */
inline void log(std::string_view text) { te__hypercall(TE_CALL_LOG, reinterpret_cast<long>(text.data()), static_cast<long>(text.size())); }

/** A sub-request to one of the tenant's origins. */
struct Fetch {
    std::string_view url = "/";
    /** Origin name from the tenant's config; empty: the default origin. */
    std::string_view origin;
    std::string_view method = "GET";
    std::vector<std::pair<std::string, std::string>> headers;
    std::string_view body;
    /** Bytes of the origin's body kept (the host's own bound is 8 MiB). */
    std::size_t max_body = 1024 * 1024;
    std::size_t max_headers = 16 * 1024;
};

struct FetchResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    /** The origin's body was longer than `max_body`: `body` holds its start. */
    bool truncated = false;
};

/** Makes the sub-request; throws HostError (EIO when the origin failed, ENOSYS without origins). */
inline FetchResponse fetch(const Fetch &f) {
    std::vector<te_header> headers;
    headers.reserve(f.headers.size());
    for (const auto &h : f.headers) headers.push_back(te_header{str(h.first), str(h.second)});
    FetchResponse out;
    out.body.resize(f.max_body);
    std::string head(f.max_headers, '\0');
    te_fetch call;
    std::memset(&call, 0, sizeof call);
    call.origin = str(f.origin);
    call.method = str(f.method);
    call.url = str(f.url);
    call.headers = headers.data();
    call.header_count = headers.size();
    call.body = str(f.body);
    call.resp_body = &out.body[0];
    call.resp_body_cap = out.body.size();
    call.resp_headers = &head[0];
    call.resp_headers_cap = head.size();
    long status = te__hypercall(TE_CALL_FETCH, reinterpret_cast<long>(&call), 0);
    if (status < 0) throw HostError("fetch", status);
    out.status = static_cast<int>(status);
    out.truncated = call.resp_body_len > call.resp_body_cap;
    out.body.resize(static_cast<std::size_t>(out.truncated ? call.resp_body_cap : call.resp_body_len));
    head.resize(static_cast<std::size_t>(call.resp_headers_len < call.resp_headers_cap ? call.resp_headers_len : call.resp_headers_cap));
    for (std::size_t at = 0; at < head.size();) {
        std::size_t end = head.find('\n', at);
        if (end == std::string::npos) break; // a line cut by max_headers
        std::string_view line(head.data() + at, end - at);
        std::size_t colon = line.find(": ");
        if (colon != std::string_view::npos) out.headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
        at = end + 1;
    }
    return out;
}

inline FetchResponse fetch(std::string_view url) {
    Fetch f;
    f.url = url;
    return fetch(f);
}

inline long kv_call(long call, std::string_view key, char *value, std::size_t len) {
    te_kv kv = {str(key), value, len};
    return te__hypercall(call, reinterpret_cast<long>(&kv), 0);
}

/** The value under `key` in the tenant's store, or nullopt when absent; throws HostError otherwise. */
inline std::optional<std::string> kv_get(std::string_view key) {
    std::string value(4096, '\0');
    // The value may change between two calls: ask again until the buffer held all of it.
    for (;;) {
        long n = kv_call(TE_CALL_KV_GET, key, &value[0], value.size());
        if (n == -ENOENT) return std::nullopt;
        if (n < 0) throw HostError("kv_get", n);
        bool whole = static_cast<std::size_t>(n) <= value.size();
        value.resize(static_cast<std::size_t>(n));
        if (whole) return value;
    }
}

/** Stores `value` under `key`; throws HostError (ENOSPC over the tenant's quota, E2BIG over 1 MiB). */
inline void kv_set(std::string_view key, std::string_view value) {
    long r = kv_call(TE_CALL_KV_SET, key, const_cast<char *>(value.data()), value.size());
    if (r < 0) throw HostError("kv_set", r);
}

/** Deletes `key`; false when it was absent, throws HostError otherwise. */
inline bool kv_delete(std::string_view key) {
    long r = kv_call(TE_CALL_KV_DELETE, key, nullptr, 0);
    if (r == -ENOENT) return false;
    if (r < 0) throw HostError("kv_delete", r);
    return true;
}

/**
 * Adds `delta` to the counter under `key` (a signed 64-bit integer stored as decimal text; absent
 * counts as 0) in one step of the store, and returns the new value; throws HostError (EINVAL when
 * the value is not such an integer, ERANGE on overflow, ENOSPC over the quota).
 */
inline std::int64_t kv_increment(std::string_view key, std::int64_t delta = 1) {
    std::int64_t value = delta;
    long r = kv_call(TE_CALL_KV_INCR, key, reinterpret_cast<char *>(&value), sizeof value);
    if (r < 0) throw HostError("kv_increment", r);
    return value;
}

/**
 * Stores `value` under `key` only if it holds exactly `expected` (nullopt: only if it is absent),
 * in one step of the store; false when it held something else. Throws HostError otherwise.
 */
inline bool kv_compare_and_set(std::string_view key, std::optional<std::string_view> expected, std::string_view value) {
    te_kv_cas c = {str(key), expected ? str(*expected) : te_str{"", 0}, str(value), expected ? 0u : TE_KV_CAS_ABSENT};
    long r = te__hypercall(TE_CALL_KV_CAS, reinterpret_cast<long>(&c), 0);
    if (r < 0) throw HostError("kv_compare_and_set", r);
    return r == 1;
}

/**
 * A persistent program's state across a live upload (te_on_live_update): when a new version
 * replaces this one, `save` runs in one instance of this version and the bytes it returns ("" for
 * none) go to the new version's on_live_restore callback before its snapshot. Register in main().
 */
inline void on_live_update(std::function<std::string()> save) {
    static std::function<std::string()> stored;
    static std::string kept;
    stored = std::move(save);
    te_on_live_update([](const void **data) -> std::size_t {
        kept = stored();
        *data = kept.data();
        return kept.size();
    });
}

/** Takes the state the previous version handed over (te_on_live_restore), before the snapshot. */
inline void on_live_restore(std::function<void(std::string_view)> restore) {
    static std::function<void(std::string_view)> stored;
    stored = std::move(restore);
    te_on_live_restore([](const void *data, std::size_t len) { stored(std::string_view(static_cast<const char *>(data), len)); });
}

/**
 * Ends initialisation (the snapshot is taken here) and answers every request with `handler`, a
 * callable taking `const Request &` and returning a Response. Never returns.
 */
template <class Handler>
[[noreturn]] void serve(Handler handler) {
    static std::optional<Handler> stored;
    stored.emplace(std::move(handler));
    te_on_request([](const te_request *raw) {
        // Read by the host at the next WAIT, after this function has returned.
        static std::optional<Response> current;
        try {
            current.emplace((*stored)(Request(*raw)));
        } catch (const std::exception &e) {
            log(std::string("handler threw: ") + e.what());
            current.emplace(Response::text(500, "internal error\n").uncacheable());
        } catch (...) {
            log("handler threw something that is not a std::exception");
            current.emplace(Response::text(500, "internal error\n").uncacheable());
        }
        current->publish();
    });
    te_wait_for_requests();
}

} // namespace tinyedge

#endif /* TINYEDGE_HPP */
