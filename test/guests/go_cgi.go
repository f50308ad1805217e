// A CGI program in Go (no SDK): answers with the request's method, query and body, and a header
// of its own. Go's runtime starts its threads for every request, since CGI runs the program from
// its entry point each time.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	body, _ := io.ReadAll(os.Stdin)
	fmt.Print("Status: 201 Created\r\nContent-Type: text/plain\r\nX-Go: yes\r\n\r\n")
	fmt.Printf("method=%s query=%s body=%s\n", os.Getenv("REQUEST_METHOD"), os.Getenv("QUERY_STRING"), body)
}
