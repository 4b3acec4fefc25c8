//! Memory per idle connection: opens N idle Volley connections from this process to a server in a
//! child process, and reports each side's resident memory per connection.
//!
//! ```sh
//! cargo run -p volley-benches --release --bin volley-idle -- 10000
//! ```
//!
//! Loopback only; the child server is stopped when the measurement ends.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once at its start: a background thread purges freed pages after
/// 1 s (`dirty_decay_ms`) and returns them to the kernel at once (`muzzy_decay_ms:0`, so
/// `MADV_DONTNEED`, which lowers RSS, rather than a lazy `MADV_FREE`). With jemalloc's defaults
/// purging runs only when the program allocates, so memory freed by a burst stays resident while
/// the process idles after it (docs/BENCHMARKS.md, "The allocator choice").
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: jemalloc reads this NUL-terminated string, once, as its `malloc_conf`; nothing writes it.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use volley::Client;
use volley_benches::{HandlerKind, echo_server, rss_kib};

fn serve() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let server = echo_server(&"127.0.0.1:0".parse().expect("address"), HandlerKind::Inline).await;
        println!("{}", server.local_addr());
        std::io::stdout().flush().expect("stdout");
        // Serve until the parent closes our stdin.
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
    });
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next().unwrap_or_else(|| "10000".into());
    if first == "serve" {
        return serve();
    }
    let connections: usize = first.parse().expect("usage: volley-idle [CONNECTIONS]");
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg("serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("server address");
    let address = line.trim().to_owned();
    let server_pid = child.id();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (client_base, server_base) = (rss_kib(std::process::id()), rss_kib(server_pid));
    let clients = runtime.block_on(async {
        let mut clients = Vec::with_capacity(connections);
        for _ in 0..connections {
            clients.push(Client::connect(address.as_str()).await.expect("connect"));
        }
        // Let both sides settle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        clients
    });
    let (client_now, server_now) = (rss_kib(std::process::id()), rss_kib(server_pid));
    let per = |now: u64, base: u64| (now.saturating_sub(base) as f64) * 1024.0 / connections as f64;
    println!("{connections} idle connections over loopback TCP");
    println!(
        "client process: {:.1} KiB -> {:.1} KiB RSS, {:.0} bytes per connection",
        client_base as f64,
        client_now as f64,
        per(client_now, client_base)
    );
    println!(
        "server process: {:.1} KiB -> {:.1} KiB RSS, {:.0} bytes per connection",
        server_base as f64,
        server_now as f64,
        per(server_now, server_base)
    );
    drop(clients);
    drop(child.stdin.take());
    let _ = child.wait();
}
