//! Chunked frames and the writer's lanes (docs/PROTOCOL.md section 5.12): a 64-byte call is not
//! held back by a 16 MiB message on the same connection, and a peer that did not announce
//! `RECEIVE_CHUNKS` still gets whole frames. Loopback TCP only; ordering is asserted from the
//! frames the peer reads, never from timings.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{ECHO_ID, Echo, echo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volley::protocol::Reassembly;
use volley::wire::{CallHead, CallId, Decoded, Frame, PREFACE_LEN, Preface, Settings, decode_unit};
use volley::{CallOptions, Client, Request, Server, ServerHandle, Status};

const BULK: usize = 16 * 1024 * 1024;

/// A server whose echo answers a request whose payload is `bulk` with 16 MiB of `7`s, and
/// reports each other call it answered on `answered`.
async fn bulk_server(answered: tokio::sync::mpsc::UnboundedSender<Bytes>) -> ServerHandle {
    Server::builder()
        .unary(common::ECHO, move |request: Request<Echo>| {
            let answered = answered.clone();
            async move {
                let message = request.into_inner();
                if message.payload == "bulk" {
                    return Ok::<_, Status>(echo(vec![7u8; BULK]));
                }
                let _ = answered.send(message.payload.clone());
                Ok(message)
            }
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap()
}

/// A raw client: sends its preface and `settings`, then reads what the server sends, taking
/// each frame as it comes whole (put back together from chunks when it announced
/// `RECEIVE_CHUNKS`) and counting the chunks.
struct Peer {
    stream: TcpStream,
    inbox: BytesMut,
    reassembly: Reassembly,
    chunks: bool,
    chunks_seen: usize,
}

impl Peer {
    async fn connect(server: &ServerHandle, settings: Settings) -> Self {
        Self::connect_with_receive_buffer(server, settings, None).await
    }

    /// [`Peer::connect`] with the socket's receive buffer set to `receive_buffer` bytes.
    async fn connect_with_receive_buffer(server: &ServerHandle, settings: Settings, receive_buffer: Option<u32>) -> Self {
        let volley::net::Address::Tcp(addr) = server.local_addr().clone() else {
            unreachable!()
        };
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(addr).await.unwrap();
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&Preface::CURRENT.encode());
        Frame::Settings(settings).encode(&mut hello);
        stream.write_all(&hello).await.unwrap();
        let mut preface = [0u8; PREFACE_LEN];
        stream.read_exact(&mut preface).await.unwrap();
        let mut peer = Self {
            stream,
            inbox: BytesMut::new(),
            reassembly: Reassembly::default(),
            chunks: settings.accepts_chunks(),
            chunks_seen: 0,
        };
        assert!(matches!(peer.next_frame().await, Frame::Settings(_)));
        peer
    }

    async fn call(&mut self, call: u64, payload: &str, priority: u8) {
        self.calls(&[(call, payload, priority)]).await;
    }

    /// Sends the Requests of `calls` (`(call id, payload, priority)`) in one write.
    async fn calls(&mut self, calls: &[(u64, &str, u8)]) {
        let mut out = BytesMut::new();
        for &(call, payload, priority) in calls {
            request(call, payload, priority).encode(&mut out);
        }
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next whole frame from the server (within 10 s).
    async fn next_frame(&mut self) -> Frame {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if self.chunks {
                if let Some(frame) = self.next_unit() {
                    return frame;
                }
            } else if let Some(frame) = volley::wire::decode_frame(&mut self.inbox, u32::MAX).unwrap() {
                return frame;
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.inbox)).await;
            assert!(matches!(read, Ok(Ok(n)) if n > 0), "the server stopped sending: {read:?}");
        }
    }

    /// Takes chunks and frames off the inbox through the reassembly, counting chunks.
    fn next_unit(&mut self) -> Option<Frame> {
        loop {
            let mut peek = self.inbox.clone();
            let unit = decode_unit(&mut peek, u32::MAX).unwrap()?;
            let mut one = self.inbox.split_to(self.inbox.len() - peek.len());
            if matches!(unit, Decoded::Chunk(_)) {
                self.chunks_seen += 1;
            }
            if let Some(frame) = self.reassembly.decode_frame(&mut one, u32::MAX).unwrap() {
                return Some(frame);
            }
        }
    }
}

/// A unary Request for the echo method.
fn request(call: u64, payload: &str, priority: u8) -> Frame {
    let mut message = BytesMut::new();
    prost::Message::encode(&echo(payload.to_owned()), &mut message).unwrap();
    Frame::Request {
        call_id: CallId(call),
        head: CallHead {
            method_id: ECHO_ID,
            priority,
            ..CallHead::default()
        },
        message: Some(message.freeze()),
        end_stream: true,
    }
}

fn response_payload(frame: &Frame, call: u64) -> Option<Bytes> {
    match frame {
        Frame::Response {
            call_id,
            message: Some(message),
            end_stream: true,
            ..
        } if *call_id == CallId(call) => Some(<Echo as prost::Message>::decode(message.clone()).unwrap().payload),
        _ => None,
    }
}

/// Asks for 16 MiB (call 1), waits until the server is writing it into a socket the peer does
/// not read, then makes a 64-byte call at priority 255 (call 3) and, with `answered`, waits
/// until its handler has answered.
async fn bulk_then_small(server: &ServerHandle, peer: &mut Peer, answered: Option<&mut tokio::sync::mpsc::UnboundedReceiver<Bytes>>) {
    let writes_before = server.stats().write_syscalls;
    peer.call(1, "bulk", 0).await;
    // Syscalls are counted as they happen (bytes only once a batch is done).
    common::wait_for("the server started writing the 16 MiB answer", || {
        server.stats().write_syscalls > writes_before
    })
    .await;
    peer.call(3, "small", 255).await;
    let Some(answered) = answered else { return };
    let small = tokio::time::timeout(Duration::from_secs(10), answered.recv()).await;
    assert_eq!(
        small.unwrap().unwrap(),
        "small",
        "the server read the small call while writing the 16 MiB"
    );
    // The answer is queued as the handler returns; let it reach the queue.
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn a_64_byte_high_priority_call_completes_while_a_16_mib_answer_is_in_flight() {
    let (tx, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let server = bulk_server(tx).await;
    let announced = Settings {
        receive_chunks: 1,
        ..Settings::default()
    };
    let mut peer = Peer::connect(&server, announced).await;
    bulk_then_small(&server, &mut peer, Some(&mut answered)).await;
    let first = peer.next_frame().await;
    assert_eq!(response_payload(&first, 3).as_deref(), Some(&b"small"[..]), "{first:?}");
    assert!(peer.reassembly.in_progress(), "the 16 MiB answer is still arriving in chunks");
    assert!(peer.chunks_seen >= 1);
    let second = peer.next_frame().await;
    let bulk = response_payload(&second, 1).expect("the 16 MiB answer");
    assert_eq!(bulk.len(), BULK);
    assert!(bulk.iter().all(|b| *b == 7), "the chunks were put back in order");
    let expected_chunks = (BULK + 64).div_ceil(volley::wire::DEFAULT_CHUNK_SIZE);
    assert!(peer.chunks_seen >= expected_chunks, "{} chunks for 16 MiB", peer.chunks_seen);
    server.shutdown().await;
}

/// A server whose inline echo answers `bulk` with 16 MiB of `7`s (one buffer, by reference) and
/// reports every other call it answered on `answered`, with `socket` options.
async fn inline_bulk_server(answered: tokio::sync::mpsc::UnboundedSender<Bytes>, socket: volley::net::SocketConfig) -> ServerHandle {
    inline_bulk_server_with(answered, socket, volley::protocol::ConnectionConfig::default()).await
}

/// [`inline_bulk_server`] with the connection settings `config`.
async fn inline_bulk_server_with(
    answered: tokio::sync::mpsc::UnboundedSender<Bytes>,
    socket: volley::net::SocketConfig,
    config: volley::protocol::ConnectionConfig,
) -> ServerHandle {
    let bulk = Bytes::from(vec![7u8; BULK]);
    Server::builder()
        .socket_config(socket)
        .connection_config(config)
        .unary_inline(common::ECHO, move |request: Request<Echo>| {
            let message = request.into_inner();
            if message.payload == "bulk" {
                return Ok::<_, Status>(echo(bulk.clone()));
            }
            let _ = answered.send(message.payload.clone());
            Ok(message)
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap()
}

/// Which of `calls` `frame` answers, if any.
fn answered_call(frame: &Frame, calls: &[u64]) -> Option<u64> {
    calls.iter().copied().find(|&call| response_payload(frame, call).is_some())
}

/// Reads the answers to `calls` and returns their order; the answer to `high` must come
/// between two chunks of the first 16 MiB answer.
async fn answers_in_order(peer: &mut Peer, calls: &[u64], high: u64) -> Vec<u64> {
    let mut order = Vec::new();
    while order.len() < calls.len() {
        let frame = peer.next_frame().await;
        let call = answered_call(&frame, calls).unwrap_or_else(|| panic!("unexpected {frame:?}"));
        if call == high {
            assert!(peer.reassembly.in_progress(), "the high answer came between two chunks");
        }
        order.push(call);
    }
    order
}

#[tokio::test]
async fn a_high_priority_answer_goes_between_chunks_where_a_normal_one_waits_behind_the_next_bulk_answer() {
    let (tx, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let server = inline_bulk_server(tx, volley::net::SocketConfig::default()).await;
    let announced = Settings {
        receive_chunks: 1,
        ..Settings::default()
    };
    let mut peer = Peer::connect(&server, announced).await;
    let writes_before = server.stats().write_syscalls;
    peer.call(1, "bulk", 0).await;
    common::wait_for("the server started writing the first 16 MiB answer", || {
        server.stats().write_syscalls > writes_before
    })
    .await;
    // While the peer reads nothing (the writer is stuck inside the first answer's chunks):
    // a second 16 MiB answer, then a small one at priority 0, then one at 255. The normal lane
    // holds [bulk 3, normal 5]: it cannot go between chunks (one chunked frame at a time), so
    // call 5 waits for all of answer 1; the high lane holds [high 7], which can.
    peer.calls(&[(3, "bulk", 0), (5, "normal", 0), (7, "high", 255)]).await;
    let high = tokio::time::timeout(Duration::from_secs(10), answered.recv()).await;
    assert_eq!(high.unwrap().unwrap(), "high", "dispatched first: highest priority");
    // Its answer is queued as the handler returns, inside the read pass.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let order = answers_in_order(&mut peer, &[1, 3, 5, 7], 7).await;
    assert_eq!(order[..2], [7, 1], "the high answer overtook the first 16 MiB answer: {order:?}");
    assert!(
        order.iter().position(|&c| c == 5) > order.iter().position(|&c| c == 1),
        "the normal answer waited for the 16 MiB answer ahead of it: {order:?}"
    );
    server.shutdown().await;
}

/// Socket buffers of 64 KiB, so that the kernel takes little of a 16 MiB answer the peer does
/// not read and the write queue stays over its cap.
fn small_socket_buffers() -> volley::net::SocketConfig {
    volley::net::SocketConfig {
        send_buffer_size: Some(64 * 1024),
        recv_buffer_size: Some(64 * 1024),
        ..volley::net::SocketConfig::default()
    }
}

/// Asks for 16 MiB (call 1) and waits until the server is writing it.
async fn bulk_in_progress(server: &ServerHandle, peer: &mut Peer) {
    let writes_before = server.stats().write_syscalls;
    peer.call(1, "bulk", 0).await;
    common::wait_for("the server started writing the 16 MiB answer", || {
        server.stats().write_syscalls > writes_before
    })
    .await;
}

/// An inline bulk server with small socket buffers and a peer (chunks announced) that asks for
/// two 16 MiB answers (calls 1 and 3) and from then on reads nothing: the first is being cut into
/// chunks (the one message the cap lets past it), the second holds the queue over its 8 MiB cap.
async fn two_bulk_answers_over_the_cap() -> (ServerHandle, Peer, tokio::sync::mpsc::UnboundedReceiver<Bytes>) {
    let (tx, answered) = tokio::sync::mpsc::unbounded_channel();
    let server = inline_bulk_server(tx, small_socket_buffers()).await;
    let announced = Settings {
        receive_chunks: 1,
        ..Settings::default()
    };
    let mut peer = Peer::connect_with_receive_buffer(&server, announced, Some(64 * 1024)).await;
    bulk_in_progress(&server, &mut peer).await;
    peer.call(3, "bulk", 0).await;
    common::wait_for("the second 16 MiB answer holds the queue over its cap", || {
        server.stats().write_queue_bytes >= 8 * 1024 * 1024
    })
    .await;
    (server, peer, answered)
}

#[tokio::test]
async fn a_high_priority_call_runs_and_is_answered_while_a_16_mib_answer_holds_the_queue_over_its_cap() {
    // A call at priority 0 is then held back; one at 255 has the high lane's own room.
    let (server, mut peer, mut answered) = two_bulk_answers_over_the_cap().await;
    peer.calls(&[(5, "normal", 0), (7, "high", 255)]).await;
    let high = tokio::time::timeout(Duration::from_secs(10), answered.recv()).await;
    assert_eq!(high.unwrap().unwrap(), "high", "the high call ran over the cap");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(answered.try_recv().is_err(), "the normal call is held back at the cap");
    assert!(server.stats().write_queue_bytes >= 8 * 1024 * 1024, "still over the cap");
    let order = answers_in_order(&mut peer, &[1, 3, 5, 7], 7).await;
    assert_eq!(order[..2], [7, 1], "the high answer overtook the first 16 MiB answer: {order:?}");
    assert!(
        order.iter().position(|&c| c == 5) > order.iter().position(|&c| c == 1),
        "the held call ran once the queue had room: {order:?}"
    );
    assert_eq!(answered.recv().await.as_deref(), Some(&b"normal"[..]));
    server.shutdown().await;
}

/// 64 calls at priority 255 with 64 KiB answers behind two 16 MiB answers, and a peer that
/// reads nothing: the high lane takes answers over the cap only up to its own room (1 MiB of the
/// 8 MiB cap, twice that at most while a batch taken from it waits for the socket), so the
/// queue stays bounded; every answer arrives once the peer reads.
#[tokio::test]
async fn over_the_cap_the_high_lane_holds_at_most_its_own_room() {
    const CALLS: u64 = 64;
    const ANSWER: usize = 64 * 1024;
    let (server, mut peer, mut answered) = two_bulk_answers_over_the_cap().await;
    let payload = "h".repeat(ANSWER);
    let calls: Vec<(u64, &str, u8)> = (0..CALLS).map(|i| (5 + 2 * i, payload.as_str(), 255)).collect();
    peer.calls(&calls).await;
    // Until the count of answered calls stays still for 300 ms.
    let mut ran = 0;
    loop {
        match tokio::time::timeout(Duration::from_millis(300), answered.recv()).await {
            Ok(Some(_)) => ran += 1,
            Ok(None) => unreachable!("the server holds the sender"),
            Err(_) => break,
        }
    }
    let room = 8 * 1024 * 1024 / 8;
    let most = 2 * (room / ANSWER + 1);
    eprintln!(
        "{ran} of {CALLS} high calls ran over the cap (at most {most}); queue peak {}",
        server.stats().write_queue_peak
    );
    assert!(ran >= room / ANSWER, "the high lane filled its room: {ran} calls ran");
    assert!(ran <= most, "the high lane stopped at its room: {ran} calls ran");
    // Everything arrives once the peer reads.
    let mut answers = 0;
    let mut bulk = 0;
    while answers < CALLS || bulk < 2 {
        let frame = peer.next_frame().await;
        if [1, 3]
            .iter()
            .any(|&call| response_payload(&frame, call).is_some_and(|b| b.len() == BULK))
        {
            bulk += 1;
        } else {
            let call = (0..CALLS).map(|i| 5 + 2 * i).find(|&call| response_payload(&frame, call).is_some());
            assert!(call.is_some(), "unexpected {frame:?}");
            answers += 1;
        }
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_steady_high_lane_never_starves_a_bulk_answer_at_least_one_chunk_goes_between_two_of_its_writes() {
    // Small socket buffers on both sides, so the 16 MiB answer takes many writes and the high
    // calls below meet it in progress.
    let (tx, _answered) = tokio::sync::mpsc::unbounded_channel();
    let server = inline_bulk_server(tx, small_socket_buffers()).await;
    let announced = Settings {
        receive_chunks: 1,
        ..Settings::default()
    };
    let mut peer = Peer::connect_with_receive_buffer(&server, announced, Some(64 * 1024)).await;
    peer.call(1, "bulk", 0).await;
    // A high call always in flight: each answer sends the next one at once.
    let mut call = 3;
    peer.call(call, "high", 255).await;
    // `chunks_seen` when each high answer came in the middle of the 16 MiB answer.
    let mut between = Vec::new();
    loop {
        let frame = peer.next_frame().await;
        if let Some(bulk) = response_payload(&frame, 1) {
            assert_eq!(bulk.len(), BULK, "the bulk answer completed whole");
            break;
        }
        assert_eq!(response_payload(&frame, call).as_deref(), Some(&b"high"[..]), "{frame:?}");
        if peer.reassembly.in_progress() {
            between.push(peer.chunks_seen);
        }
        call += 2;
        peer.call(call, "high", 255).await;
    }
    assert!(between.len() >= 2, "high answers met the bulk answer in progress: {between:?}");
    assert!(
        between.windows(2).all(|pair| pair[1] > pair[0]),
        "at least one chunk of bulk between two high answers: {between:?}"
    );
    let last = peer.next_frame().await;
    assert!(response_payload(&last, call).is_some(), "{last:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_did_not_announce_chunks_gets_the_16_mib_answer_whole_and_first() {
    let (tx, _answered) = tokio::sync::mpsc::unbounded_channel();
    let server = bulk_server(tx).await;
    // An older build's settings: no RECEIVE_CHUNKS entry at all. (The server does not even read
    // the small call until the 16 MiB answer, over its write queue cap, has gone out.)
    let mut peer = Peer::connect(&server, Settings::default()).await;
    bulk_then_small(&server, &mut peer, None).await;
    let first = peer.next_frame().await;
    assert_eq!(
        response_payload(&first, 1).map(|p| p.len()),
        Some(BULK),
        "whole, in the order queued"
    );
    let second = peer.next_frame().await;
    assert_eq!(response_payload(&second, 3).as_deref(), Some(&b"small"[..]));
    server.shutdown().await;
}

#[tokio::test]
async fn two_volley_peers_exchange_16_mib_messages_in_chunks_intact_beside_small_calls() {
    // Chunking is opt-in: both sides announce it.
    let (server, client) = echo_pair(volley::protocol::ConnectionConfig::default().receive_chunks(true)).await;
    let payload: Bytes = (0..BULK).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let small_calls = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let reply: Echo = client
                    .unary(ECHO_ID, &echo(format!("small {i}")), CallOptions::new().priority(200))
                    .await
                    .unwrap();
                assert_eq!(reply.payload, format!("small {i}"));
            }
        })
    };
    for _ in 0..2 {
        let reply: Echo = client.unary(ECHO_ID, &echo(payload.clone()), CallOptions::new()).await.unwrap();
        assert_eq!(reply.payload, payload);
    }
    small_calls.await.unwrap();
    let stats = client.stats();
    // Chunk headers are counted in the bytes sent: 16 bytes per chunk beyond the frames.
    assert!(
        stats.bytes_out > 2 * BULK as u64 + 2 * 256 * 16,
        "the 16 MiB requests went out in chunks: {} bytes",
        stats.bytes_out
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_dispatches_the_calls_of_one_read_highest_priority_first() {
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = {
        let order = order.clone();
        Server::builder()
            .unary_inline(common::ECHO, move |request: Request<Echo>| {
                let message = request.into_inner();
                order.lock().unwrap().push(message.payload.clone());
                Ok::<_, Status>(message)
            })
            .build()
            .unwrap()
            .serve("127.0.0.1:0")
            .await
            .unwrap()
    };
    let mut peer = Peer::connect(&server, Settings::default()).await;
    // Three Requests in one write, so they arrive in one read: priorities 0, 255, 100.
    peer.calls(&[(1, "p0", 0), (3, "p255", 255), (5, "p100", 100)]).await;
    for _ in 0..3 {
        assert!(matches!(peer.next_frame().await, Frame::Response { .. }));
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order, ["p255", "p100", "p0"]);
    server.shutdown().await;
}

#[tokio::test]
async fn with_acknowledged_chunks_and_a_64_kib_window_16_mib_messages_cross_intact_both_ways() {
    // Version 2 on both sides: each writer keeps at most one 64 KiB chunk unacknowledged, so a
    // 16 MiB message needs about 256 ChunkAck round trips; a lost or miscounted acknowledgement
    // would stall it until the write stall timeout.
    let acked = volley::protocol::ConnectionConfig::default()
        .acknowledge_chunks(true)
        .chunk_window(64 * 1024);
    let (server, client) = echo_pair(acked).await;
    let payload: Bytes = (0..BULK).map(|i| (i % 253) as u8).collect::<Vec<u8>>().into();
    let started = std::time::Instant::now();
    for _ in 0..2 {
        let reply: Echo = client.unary(ECHO_ID, &echo(payload.clone()), CallOptions::new()).await.unwrap();
        assert_eq!(reply.payload, payload);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "no window stall");
    let small: Echo = client.unary(ECHO_ID, &echo("after"), CallOptions::new()).await.unwrap();
    assert_eq!(small.payload, "after");
    server.shutdown().await;
}

/// An echo server and a client to it, both with `config`.
async fn echo_pair(config: volley::protocol::ConnectionConfig) -> (ServerHandle, Client) {
    let server = common::echo_server()
        .connection_config(config.clone())
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::builder()
        .connection_config(config)
        .connect(server.local_addr())
        .await
        .unwrap();
    (server, client)
}

#[tokio::test]
async fn two_16_mib_answers_under_a_64_kib_chunk_window_both_arrive() {
    // The second 16 MiB answer, queued while the first is written in chunks, puts the server's
    // write queue over its 8 MiB cap, and the writer waits for the client's ChunkAcks: the
    // reader must go on reading them at the cap (it once stopped, and the client's partial-frame
    // timeout, 30 s, ended both calls).
    let acked = volley::protocol::ConnectionConfig::default()
        .acknowledge_chunks(true)
        .chunk_window(64 * 1024);
    let (tx, _answered) = tokio::sync::mpsc::unbounded_channel();
    let server = inline_bulk_server_with(tx, volley::net::SocketConfig::default(), acked.clone()).await;
    let client = Client::builder()
        .connection_config(acked)
        .connect(server.local_addr())
        .await
        .unwrap();
    let call = || {
        let client = client.clone();
        async move { client.unary::<Echo, Echo>(ECHO_ID, &echo("bulk"), CallOptions::new()).await }
    };
    let both = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(call(), call()) }).await;
    let (first, second) = both.expect("both 16 MiB answers within 10 s");
    assert_eq!(first.unwrap().payload.len(), BULK);
    assert_eq!(second.unwrap().payload.len(), BULK);
    server.shutdown().await;
}

/// The client's side of the high lane's room: a 16 MiB upload to a server that reads nothing
/// holds the client's write queue over its cap; a call at priority 0 waits for room, one at 255
/// is sent at once.
#[tokio::test]
async fn a_client_sends_a_high_priority_call_while_its_own_16_mib_upload_holds_its_queue_over_the_cap() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move { common::raw::RawServer::accept(&listener).await });
    let client = Client::builder()
        .socket_config(small_socket_buffers())
        .connect(address)
        .await
        .unwrap();
    // The server reads nothing from here on.
    let _server = accept.await.unwrap();
    let call = |payload: Bytes, priority: u8| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .unary::<Echo, Echo>(ECHO_ID, &echo(payload), CallOptions::new().priority(priority))
                .await
        })
    };
    let upload = call(Bytes::from(vec![7u8; BULK]), 0);
    common::wait_for("the upload holds the client's queue over its 8 MiB cap", || {
        client.stats().write_queue_bytes >= 8 * 1024 * 1024
    })
    .await;
    let normal = call(Bytes::from_static(b"normal"), 0);
    let high = call(Bytes::from_static(b"high"), 255);
    common::wait_for("the high-priority call is sent", || client.stats().calls_started == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = client.stats();
    assert_eq!(
        stats.calls_started, 2,
        "the upload and the high call; the normal call waits for room"
    );
    assert!(stats.write_queue_bytes >= 8 * 1024 * 1024, "still over the cap");
    for call in [upload, normal, high] {
        call.abort();
    }
}

/// A peer that announces acknowledged chunks (version 2) and acknowledges none: the server's
/// writer stops at its chunk window (256 KiB into a 16 MiB answer) and waits; a high-priority
/// call's answer, queued meanwhile, goes out at that chunk boundary without waiting for an
/// acknowledgement that never comes.
#[tokio::test]
async fn a_high_priority_answer_goes_out_while_the_writer_waits_for_its_chunk_window() {
    let (tx, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let server = inline_bulk_server(tx, volley::net::SocketConfig::default()).await;
    let announced = Settings {
        receive_chunks: volley::wire::RECEIVE_CHUNKS_ACKED,
        ..Settings::default()
    };
    let mut peer = Peer::connect(&server, announced).await;
    peer.call(1, "bulk", 0).await;
    // Everything the window lets out (256 KiB of chunks) arrives; nothing is acknowledged.
    let window_chunks = volley::wire::DEFAULT_CHUNK_WINDOW / volley::wire::DEFAULT_CHUNK_SIZE;
    while peer.chunks_seen < window_chunks {
        let read = tokio::time::timeout(Duration::from_secs(10), peer.stream.read_buf(&mut peer.inbox)).await;
        assert!(matches!(read, Ok(Ok(n)) if n > 0), "the window's chunks arrive: {read:?}");
        assert!(peer.next_unit().is_none(), "no whole frame yet");
    }
    peer.call(3, "high", 255).await;
    assert_eq!(answered.recv().await.as_deref(), Some(&b"high"[..]));
    let frame = peer.next_frame().await;
    assert_eq!(response_payload(&frame, 3).as_deref(), Some(&b"high"[..]), "{frame:?}");
    assert!(peer.reassembly.in_progress(), "between two chunks of the 16 MiB answer");
    assert_eq!(peer.chunks_seen, window_chunks, "no chunk past the window went out unacknowledged");
    server.shutdown().await;
}

/// `ConnectionConfig::chunk_size`: a server set to 16 KiB chunks cuts a 16 MiB answer into
/// 1,024 of them (4 times as many as the default 64 KiB) and a small call's answer still goes
/// between them; the answer arrives intact.
#[tokio::test]
async fn a_server_with_16_kib_chunks_cuts_a_16_mib_answer_into_1024_and_sends_a_small_one_between() {
    let (tx, mut answered) = tokio::sync::mpsc::unbounded_channel();
    let sixteen_kib = volley::protocol::ConnectionConfig::default().chunk_size(16 * 1024);
    let server = inline_bulk_server_with(tx, small_socket_buffers(), sixteen_kib).await;
    let announced = Settings {
        receive_chunks: 1,
        ..Settings::default()
    };
    let mut peer = Peer::connect_with_receive_buffer(&server, announced, Some(64 * 1024)).await;
    bulk_in_progress(&server, &mut peer).await;
    peer.call(3, "small", 255).await;
    assert_eq!(answered.recv().await.as_deref(), Some(&b"small"[..]));
    let first = peer.next_frame().await;
    assert_eq!(response_payload(&first, 3).as_deref(), Some(&b"small"[..]), "{first:?}");
    assert!(peer.reassembly.in_progress(), "between two chunks of the 16 MiB answer");
    let second = peer.next_frame().await;
    let bulk = response_payload(&second, 1).expect("the 16 MiB answer");
    assert!(bulk.len() == BULK && bulk.iter().all(|b| *b == 7), "intact and in order");
    let expected = (BULK + 64).div_ceil(16 * 1024);
    assert!(
        (expected..expected + 2).contains(&peer.chunks_seen),
        "{} chunks for 16 MiB at 16 KiB",
        peer.chunks_seen
    );
    server.shutdown().await;
}
