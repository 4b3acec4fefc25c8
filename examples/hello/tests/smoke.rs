//! Runs the example as a newcomer would: once on its own (it must greet, count down and stop),
//! and with `--serve`, where another client calls it and Ctrl-C (SIGINT) stops it cleanly and
//! promptly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[allow(dead_code, unreachable_pub)]
mod hello {
    volley::include_proto!("hello");
}

fn hello() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_volley-hello"));
    command.stdout(Stdio::piped()).stderr(Stdio::inherit());
    command
}

/// Waits for `child` to exit, killing it (and failing) after `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("volley-hello still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_example_greets_counts_down_and_stops_by_itself() {
    let mut child = hello().spawn().unwrap();
    let status = wait_at_most(&mut child, Duration::from_secs(30));
    let mut output = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut output).unwrap();
    assert!(status.success(), "{status}: {output}");
    assert!(output.starts_with("serving Greeter on 127.0.0.1:"), "{output}");
    assert!(output.ends_with("\nHello, Volley!\n3\n2\n1\n0\n"), "{output}");
}

// Multi-thread: the test thread blocks while it waits for the process, and the client's
// connection must still answer the server's GoAway meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn with_serve_it_answers_other_clients_until_ctrl_c_then_stops_at_once() {
    let mut child = hello().args(["--serve", "127.0.0.1:0"]).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map(Result::unwrap);
    let first = lines.next().expect("a first line");
    let address = first.strip_prefix("serving Greeter on ").expect(&first).to_owned();
    // Its own calls are done once the countdown reached 0; then it serves until Ctrl-C.
    assert!(lines.any(|line| line == "0"), "the countdown did not finish");

    let client = hello::greeter_client::GreeterClient::connect(address.as_str())
        .await
        .unwrap()
        .timeout(Duration::from_secs(5));
    let reply = client.say_hello(hello::HelloRequest { name: "test".into() }).await.unwrap();
    assert_eq!(reply.message, "Hello, test!");

    let interrupt = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(interrupt.success());
    // Well under the 10 s drain timeout, though our client is still connected: an idle
    // connection closes when the server says it is going away.
    let status = wait_at_most(&mut child, Duration::from_secs(5));
    assert!(status.success(), "after Ctrl-C: {status}");
    drop(client);
}
