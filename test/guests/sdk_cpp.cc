// The C++ SDK (tinyedge.hpp) on every path, by URL path:
//   /echo      method, path, query, a header, the body and the `name` query parameter
//   /fetch     a sub-request to the default origin: status, a header, body, truncation (502 errno=N when refused)
//   /kv        kv_set, kv_get (a value over the first buffer), kv_delete twice, kv_get absent
//   /kv-full   kv_set over the quota: the HostError's errno
//   /kv-atomic kv_increment twice, kv_compare_and_set over a value and over absence, and the
//              HostError of an increment of a value that is not an integer
//   /fail      a handler that throws: 500 and a log line
//   /cache     cache policy and tags
//   recv: /pass -> pass, /old/x -> rewrite to /new/x with a header; deliver: a header with the status
#include <tinyedge.hpp>

#include <string>

using tinyedge::Request;
using tinyedge::Response;

static std::string initialised_in_main;

static Response generate(const Request &req) {
    if (req.path() == "/echo") {
        std::string out = std::string(req.method()) + " " + std::string(req.path()) + " query=" + std::string(req.query());
        out += " x-test=" + std::string(req.header("X-TEST").value_or("(none)"));
        out += " name=" + req.query_param("name").value_or("(none)");
        out += " body=" + std::string(req.body()) + " init=" + initialised_in_main + "\n";
        return Response::text(200, out);
    }
    if (req.path() == "/fetch") {
        tinyedge::Fetch f;
        f.url = "/data";
        f.headers.emplace_back("X-From", "cpp");
        f.max_body = 5;
        tinyedge::FetchResponse r;
        try {
            r = tinyedge::fetch(f);
        } catch (const tinyedge::HostError &e) {
            return Response::text(502, "errno=" + std::to_string(e.error()) + "\n");
        }
        std::string type;
        for (const auto &h : r.headers) if (h.first == "content-type") type = h.second;
        return Response::text(200, "status=" + std::to_string(r.status) + " type=" + type + " body=" + r.body + " truncated=" + (r.truncated ? "yes" : "no") + "\n");
    }
    if (req.path() == "/kv") {
        std::string big(5000, 'x');
        tinyedge::kv_set("big", big);
        std::string got = tinyedge::kv_get("big").value_or("");
        bool first = tinyedge::kv_delete("big");
        bool second = tinyedge::kv_delete("big");
        return Response::text(200, "len=" + std::to_string(got.size()) + " same=" + (got == big ? "yes" : "no") + " deleted=" + (first ? "yes" : "no") + "," + (second ? "yes" : "no") + " after=" + (tinyedge::kv_get("big") ? "present" : "absent") + "\n");
    }
    if (req.path() == "/kv-atomic") {
        std::int64_t a = tinyedge::kv_increment("n", 5);
        std::int64_t b = tinyedge::kv_increment("n", -2);
        bool over = tinyedge::kv_compare_and_set("n", std::string_view("3"), "30");
        bool stale = tinyedge::kv_compare_and_set("n", std::string_view("3"), "x");
        bool fresh = tinyedge::kv_compare_and_set("word", std::nullopt, "v");
        bool again = tinyedge::kv_compare_and_set("word", std::nullopt, "w");
        int notnum = 0;
        try {
            tinyedge::kv_increment("word");
        } catch (const tinyedge::HostError &e) {
            notnum = e.error();
        }
        auto yes = [](bool b) { return std::string(b ? "yes" : "no"); };
        return Response::text(200, "incr=" + std::to_string(a) + "," + std::to_string(b) + " cas=" + yes(over) + "," + yes(stale) +
                                       " absent=" + yes(fresh) + "," + yes(again) + " n=" + tinyedge::kv_get("n").value_or("") +
                                       " notnum=" + std::to_string(notnum) + "\n");
    }
    if (req.path() == "/kv-full") {
        try {
            tinyedge::kv_set("k", std::string(2000, 'v'));
            return Response::text(200, "stored\n");
        } catch (const tinyedge::HostError &e) {
            return Response::text(507, "errno=" + std::to_string(e.error()) + " what=" + e.what() + "\n");
        }
    }
    if (req.path() == "/fail") throw std::runtime_error("no such thing");
    if (req.path() == "/cache") return Response::text(200, "cached\n").cache(60, 10, 5).tag("a").tag("b");
    return Response::text(404, "not found\n");
}

int main() {
    initialised_in_main = "yes";
    tinyedge::serve([](const Request &req) -> Response {
        switch (req.phase()) {
        case tinyedge::Phase::recv:
            if (req.path() == "/pass") return Response().pass();
            if (req.path().substr(0, 5) == "/old/") return Response().rewrite_url("/new/" + std::string(req.url().substr(5))).header("X-Recv", "cpp");
            return Response();
        case tinyedge::Phase::deliver:
            return Response().header("X-Delivered", "status-" + std::to_string(req.response_status()));
        default:
            return generate(req);
        }
    });
}
