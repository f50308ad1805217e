// hello_cpp: the C++ SDK (tinyedge.hpp). Greets the `name` query parameter, cached for a minute
// under the tag "greetings"; what main() prepares before serve() is frozen in the snapshot.
#include <tinyedge.hpp>

#include <string>

int main() {
    const std::string greeting = "hello";
    tinyedge::serve([greeting](const tinyedge::Request &req) {
        std::string name = req.query_param("name").value_or("world");
        return tinyedge::Response(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(greeting + ", " + name + "\n")
            .cache(60, 10)
            .tag("greetings");
    });
}
