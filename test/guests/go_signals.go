// Go's runtime and signals: a goroutine spinning in a loop without calls holds the only P
// (GOMAXPROCS 1) until sysmon's SIGURG preempts it asynchronously, so main's sleep can end; a
// nil-pointer dereference is a SIGSEGV that the runtime turns into a panic that recover() stops;
// and an integer division by zero is a SIGFPE turned into a panic the same way.
package main

import (
	"fmt"
	"os"
	"runtime"
	"time"
)

var counter uint64

//go:noinline
func spin() {
	for {
		counter++
	}
}

func recovered(what string, f func()) {
	defer func() { fmt.Printf("%s: recovered %v\n", what, recover()) }()
	f()
}

func main() {
	runtime.GOMAXPROCS(1)
	go spin()
	time.Sleep(50 * time.Millisecond)
	fmt.Println("main woke while a goroutine spins without calls")
	var p *int
	recovered("nil dereference", func() { fmt.Println(*p) })
	zero := len(os.Args) - len(os.Args)
	recovered("division by zero", func() { fmt.Println(1 / zero) })
	os.Exit(3)
}
