//! The first Volley program: the `Greeter` of `proto/hello.proto`, served and called over loopback.
//! `cargo run -p volley-hello` calls it and stops; `-- --serve 127.0.0.1:50051` then serves on.

use std::time::Duration;

use hello::greeter_client::GreeterClient;
use hello::greeter_server::{Greeter, GreeterServer};
use hello::{CountdownRequest, HelloReply, HelloRequest, Tick};
use volley::{Request, Response, Server, Status, StreamSender};

#[allow(dead_code, unreachable_pub)] // the messages, client and server trait from build.rs, not all used here
mod hello {
    volley::include_proto!("hello");
}

struct Hello;

impl Greeter for Hello {
    async fn say_hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let message = format!("Hello, {}!", request.into_inner().name);
        Ok(HelloReply { message }.into())
    }

    async fn countdown(&self, request: Request<CountdownRequest>, mut ticks: StreamSender<Tick>) -> Result<(), Status> {
        for left in (0..=request.get_ref().from).rev() {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(100)) => ticks.send(&Tick { left }).await?,
                () = request.context().shutdown() => break, // the server is stopping: end with OK
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve_at = std::env::args().skip_while(|arg| arg != "--serve").nth(1); // the address after --serve
    let server = Server::builder()
        .add_service(GreeterServer::new(Hello))
        .build()?
        .serve(serve_at.as_deref().unwrap_or("127.0.0.1:0")) // port 0: any free port
        .await?;
    println!("serving Greeter on {}", server.local_addr());

    // Reconnects if the server closes the connection; calls without a deadline get 5 s.
    let client = GreeterClient::connect(server.local_addr()).await?.timeout(Duration::from_secs(5));
    let reply = client.say_hello(HelloRequest { name: "Volley".into() }).await?;
    println!("{}", reply.message);
    let mut ticks = client.countdown(CountdownRequest { from: 3 }).await?;
    while let Some(tick) = ticks.message().await? {
        println!("{}", tick.left);
    }

    if serve_at.is_some() {
        server.run_until(async { tokio::signal::ctrl_c().await.unwrap_or_default() }).await;
    } else {
        server.shutdown().await; // GoAway, let calls in flight finish, close
    }
    Ok(())
}
