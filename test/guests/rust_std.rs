// A plain Rust std program: what std's start-up probes before main (poll on fds 0-2, signal
// handlers, the stack guard), then arguments, collections, formatting, stdin, a caught panic,
// stderr, and an exit status of its own. Run natively it prints the same.
use std::collections::HashMap;
use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("args: {:?}", args);
    let mut counts: HashMap<char, usize> = HashMap::new();
    for c in "hello, rust std".chars() {
        *counts.entry(c).or_insert(0) += 1;
    }
    let mut pairs: Vec<_> = counts.into_iter().collect();
    pairs.sort();
    println!("counts: {:?}", pairs);
    let big: Vec<u64> = (0..1_000_000u64).map(|x| x * x % 7919).collect();
    println!("sum: {}", big.iter().sum::<u64>());
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).expect("stdin");
    println!("stdin: {} bytes, {} lines", input.len(), input.lines().count());
    let caught = std::panic::catch_unwind(|| {
        let v: Vec<i32> = Vec::new();
        v[3]
    });
    println!("panic caught: {}", caught.is_err());
    eprintln!("to stderr");
    std::process::exit(3);
}
