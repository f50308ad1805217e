// A plain Go program (CGO_ENABLED=0, so static): the runtime reserves its heap arenas and page
// summaries (large PROT_NONE ranges), starts its threads (sysmon, GC workers), then main prints
// its arguments, uses maps, goroutines and channels, the garbage collector and stdin, writes to
// stderr and exits with a status of its own. Run natively it prints the same.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
)

func main() {
	fmt.Println("args:", os.Args[1:])
	counts := map[rune]int{}
	for _, r := range "hello, go runtime" {
		counts[r]++
	}
	keys := make([]string, 0, len(counts))
	for r, n := range counts {
		keys = append(keys, fmt.Sprintf("%q:%d", r, n))
	}
	sort.Strings(keys)
	fmt.Println("counts:", strings.Join(keys, " "))

	results := make(chan int)
	for w := 0; w < 4; w++ {
		go func(w int) {
			sum := 0
			for i := 0; i < 1_000_000; i++ {
				sum += (i * w) % 7
			}
			results <- sum
		}(w)
	}
	total := 0
	for w := 0; w < 4; w++ {
		total += <-results
	}
	fmt.Println("goroutines:", total)

	var keep [][]byte
	for i := 0; i < 200; i++ {
		keep = append(keep, make([]byte, 64<<10))
		if len(keep) > 16 {
			keep = keep[1:]
		}
	}
	runtime.GC()
	fmt.Println("allocated and collected:", len(keep))

	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stdin:", err)
		os.Exit(1)
	}
	fmt.Printf("stdin: %d bytes, %d lines\n", len(in), strings.Count(string(in), "\n"))
	fmt.Fprintln(os.Stderr, "to stderr")
	os.Exit(3)
}
