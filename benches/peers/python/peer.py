"""volley-bench's Python peers: grpcio (grpc.aio) and a plain asyncio-streams floor.

volley-bench starts each mode as a child process (benches/peers/README.md has the protocol):

    python3 peer.py grpcio-server | asyncio-server
    python3 peer.py grpcio-client | asyncio-client --addr 127.0.0.1:PORT --kind unary \
        --size 64 --in-flight 128 --conns 1 --warmup-ms 750 --duration-ms 3000 [--rate R]

No generated code and no protoc: bench.Payload has one field (bytes data = 1), which is encoded
and decoded by hand below and passed to grpcio's generic handlers and multi-callables as the
(de)serializers. The default asyncio event loop is used (no uvloop).
"""

import argparse
import asyncio
import collections
import json
import socket
import sys
import time

# The most calls an open-loop run keeps in flight (as volley-bench's).
OPEN_LOOP_MAX_IN_FLIGHT = 4096
# grpcio's limit: with about 2,000 calls in flight on one channel, grpcio 1.85's aio client
# fails calls with CANCELLED here, so its open loop keeps at most 1,024 (it is overloaded long
# before, and latency counts from each intended send time either way).
GRPCIO_OPEN_LOOP_MAX_IN_FLIGHT = 1024
ECHO, FEED = 0, 1


def encode(data: bytes) -> bytes:
    """bench.Payload{data} in protobuf wire format: tag 0x0a, varint length, bytes."""
    if not data:
        return b""
    n, head = len(data), bytearray(b"\x0a")
    while n >= 0x80:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    head.append(n)
    return bytes(head) + data


def decode(buf: bytes) -> bytes:
    """The data field of a bench.Payload (fields other than 1 are skipped)."""
    data, i, end = b"", 0, len(buf)
    while i < end:
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 2:
            n, i = _varint(buf, i)
            if key >> 3 == 1:
                data = buf[i : i + n]
            i += n
        elif wire == 0:
            _, i = _varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")
    return data


def _varint(buf: bytes, i: int):
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def ready(addr: str):
    print(f"ready {addr}", flush=True)


async def serve_stdin():
    """Answers each "stats" line on stdin (no allocation count from Python); returns at EOF."""
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        if line.strip() == "stats":
            print("stats", flush=True)


# ---------------------------------------------------------------- grpcio (grpc.aio)


async def grpcio_server():
    import grpc

    async def echo(request, _context):
        return request

    async def sink(_request, _context):
        return b""

    async def feed(request, _context):
        for _ in range(int.from_bytes(request[:4], "little")):
            yield request

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo, request_deserializer=decode, response_serializer=encode),
        "Sink": grpc.unary_unary_rpc_method_handler(sink, request_deserializer=decode, response_serializer=encode),
        "Feed": grpc.unary_stream_rpc_method_handler(feed, request_deserializer=decode, response_serializer=encode),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    ready(f"127.0.0.1:{port}")
    await serve_stdin()
    await server.stop(None)


class GrpcioConn:
    max_in_flight = GRPCIO_OPEN_LOOP_MAX_IN_FLIGHT

    def __init__(self, channel):
        self.channel = channel
        self.echo = channel.unary_unary("/bench.Echo/Echo", request_serializer=encode, response_deserializer=decode)
        self.feed_call = channel.unary_stream("/bench.Echo/Feed", request_serializer=encode, response_deserializer=decode)

    @classmethod
    async def connect(cls, addr):
        import grpc

        # A local subchannel pool: each channel gets its own connection.
        channel = grpc.aio.insecure_channel(addr, options=[("grpc.use_local_subchannel_pool", 1)])
        await asyncio.wait_for(channel.channel_ready(), 10)
        return cls(channel)

    async def call(self, data):
        await self.echo(data)

    async def feed(self, request):
        got = 0
        async for _ in self.feed_call(request):
            got += 1
        return got

    async def close(self):
        await self.channel.close()


# ---------------------------------------------------------------- plain asyncio streams floor
# Frames: u32 little-endian payload length, one kind byte (0 echo, 1 feed), the payload. Echo
# frames come back unchanged and in order; a feed frame (count in its first 4 bytes) is answered
# with `count` echo frames of its payload.


async def asyncio_server():
    async def handle(reader, writer):
        try:
            while True:
                header = await reader.readexactly(5)
                body = await reader.readexactly(int.from_bytes(header[:4], "little"))
                if header[4] == ECHO:
                    writer.write(header + body)
                else:
                    frame = header[:4] + bytes([ECHO]) + body
                    for _ in range(int.from_bytes(body[:4], "little")):
                        writer.write(frame)
                        await writer.drain()
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    # asyncio sets TCP_NODELAY on its TCP transports.
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    ready(f"{host}:{port}")
    await serve_stdin()
    server.close()


class AsyncioConn:
    """One connection; calls are pipelined and matched to answers in order."""

    max_in_flight = OPEN_LOOP_MAX_IN_FLIGHT

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.pending = collections.deque()
        self.reading = None

    @classmethod
    async def connect(cls, addr):
        host, port = addr.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def _read_loop(self):
        while True:
            header = await self.reader.readexactly(5)
            body = await self.reader.readexactly(int.from_bytes(header[:4], "little"))
            self.pending.popleft().set_result(body)

    async def call(self, data):
        if self.reading is None:
            self.reading = asyncio.get_running_loop().create_task(self._read_loop())
        answer = asyncio.get_running_loop().create_future()
        self.pending.append(answer)
        self.writer.write(len(data).to_bytes(4, "little") + bytes([ECHO]) + data)
        await self.writer.drain()
        await answer

    async def feed(self, request):
        """One stream (not mixed with calls on this connection)."""
        self.writer.write(len(request).to_bytes(4, "little") + bytes([FEED]) + request)
        await self.writer.drain()
        count = int.from_bytes(request[:4], "little")
        for _ in range(count):
            header = await self.reader.readexactly(5)
            await self.reader.readexactly(int.from_bytes(header[:4], "little"))
        return count

    async def close(self):
        if self.reading is not None:
            self.reading.cancel()
        self.writer.close()


# ---------------------------------------------------------------- the load generator


def buckets(values):
    """Latencies (ns) rounded down to their 11 most significant bits (an HdrHistogram with 3
    significant digits), counted: [[value, count], ...]."""
    counts = collections.Counter()
    for v in values:
        shift = v.bit_length() - 11
        counts[(v >> shift) << shift if shift > 0 else v] += 1
    return sorted(counts.items())


async def client(conn_class, args):
    loop = asyncio.get_running_loop()
    conns = [await conn_class.connect(args.addr) for _ in range(args.conns)]
    data = b"\x5a" * args.size
    now = time.perf_counter_ns
    start = now()
    measure_from = start + args.warmup_ms * 1_000_000
    end = measure_from + args.duration_ms * 1_000_000

    async def marks():
        await asyncio.sleep(max(0, measure_from - now()) / 1e9)
        print("measure", flush=True)
        await asyncio.sleep(max(0, end - now()) / 1e9)
        print("end", flush=True)

    marking = loop.create_task(marks())
    values = []
    calls = 0
    elapsed_ns = end - measure_from

    async def closed_loop(conn):
        while True:
            started = now()
            if started >= end:
                return
            await conn.call(data)
            if started >= measure_from:
                values.append(max(1, now() - started))

    if args.kind == "unary":
        await asyncio.gather(*(closed_loop(conn) for conn in conns for _ in range(args.in_flight)))
        calls = len(values)
    elif args.kind == "stream":
        request = args.stream_len.to_bytes(4, "little") + data[4:]
        while True:
            started = now()
            if started >= end:
                break
            got = await conns[0].feed(request)
            if got != args.stream_len:
                raise SystemExit(f"short stream: {got} messages")
            if started >= measure_from:
                values.append(max(1, now() - started))
                calls += got
    elif args.kind == "open":
        calls, elapsed_ns = await open_loop(conns[0], data, args.rate, start, measure_from, end, values)
    else:
        raise SystemExit(f"unknown kind {args.kind}")
    await marking
    for conn in conns:
        await conn.close()
    result = {"calls": calls, "elapsed_s": elapsed_ns / 1e9, "mallocs": None, "hist": buckets(values)}
    print("result " + json.dumps(result), flush=True)


async def open_loop(conn, data, rate, start, measure_from, end, values):
    """Calls at `rate` per second, latency from each intended send time (no coordinated
    omission); calls still due when the window ends are not sent."""
    loop = asyncio.get_running_loop()
    now = time.perf_counter_ns
    interval = 1e9 / rate
    permits = asyncio.Semaphore(conn.max_in_flight)
    tasks = set()
    last_done = [0]
    recorded = 0

    async def one(intended, measured):
        try:
            await conn.call(data)
            done = now()
            if measured:
                values.append(max(1, done - intended))
                last_done[0] = max(last_done[0], done)
        finally:
            permits.release()

    sent = 0
    while True:
        intended = start + int(interval * sent)
        if intended >= end or now() >= end:
            break
        if intended > now():
            await asyncio.sleep((intended - now()) / 1e9)
            continue
        await permits.acquire()
        measured = intended >= measure_from
        recorded += measured
        task = loop.create_task(one(intended, measured))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    if tasks:
        await asyncio.gather(*tasks)
    return recorded, max(end - measure_from, last_done[0] - measure_from)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["grpcio-server", "grpcio-client", "asyncio-server", "asyncio-client", "version", "grpcio-version"])
    parser.add_argument("--addr")
    parser.add_argument("--kind", default="unary", choices=["unary", "stream", "open"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--conns", type=int, default=1)
    parser.add_argument("--warmup-ms", type=int, default=250)
    parser.add_argument("--duration-ms", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--stream-len", type=int, default=1000)
    args = parser.parse_args()
    if args.mode == "version":
        print(f"python {sys.version.split()[0]}, asyncio streams, default event loop")
    elif args.mode == "grpcio-version":
        import grpc

        print(f"python {sys.version.split()[0]}, grpcio {grpc.__version__} (grpc.aio)")
    elif args.mode == "grpcio-server":
        asyncio.run(grpcio_server())
    elif args.mode == "asyncio-server":
        asyncio.run(asyncio_server())
    elif args.mode == "grpcio-client":
        asyncio.run(client(GrpcioConn, args))
    else:
        asyncio.run(client(AsyncioConn, args))


if __name__ == "__main__":
    main()
