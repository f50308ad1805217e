// Unbounded recursion in Rust's main thread: std's SIGSEGV handler, on its alternate stack, sees
// the fault in the guard page below the main stack (found through /proc/self/maps by glibc's
// pthread_getattr_np), prints "thread 'main' has overflowed its stack" and aborts (status 134).
use std::io::Write;

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 128];
    std::hint::black_box(&frame);
    recurse(depth + 1) + frame[(depth % 128) as usize]
}

fn main() {
    println!("recursing");
    std::io::stdout().flush().unwrap();
    println!("{}", recurse(0));
}
