// volley-peer-go: the grpc-go echo server and load generator that volley-bench starts as child
// processes (benches/peers/README.md has the protocol on stdin and stdout).
//
//	volley-peer-go server
//	volley-peer-go client -addr 127.0.0.1:PORT -kind unary -size 64 -in-flight 128 -conns 1 -warmup-ms 750 -duration-ms 3000
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"runtime"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// openLoopMaxInFlight is the most calls an open-loop run keeps in flight (as volley-bench's).
const openLoopMaxInFlight = 4096

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: volley-peer-go server | client [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		serve()
	case "client":
		client(os.Args[2:])
	case "version":
		fmt.Printf("go %s, grpc-go %s\n", runtime.Version(), grpc.Version)
	default:
		fmt.Fprintf(os.Stderr, "unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

type echo struct{}

func (echo) Echo(_ context.Context, in *Payload) (*Payload, error) { return in, nil }
func (echo) Sink(_ context.Context, _ *Payload) (*Payload, error)  { return &Payload{}, nil }
func (echo) Feed(in *Payload, stream grpc.ServerStream) error {
	count := binary.LittleEndian.Uint32(in.Data)
	for i := uint32(0); i < count; i++ {
		if err := stream.SendMsg(in); err != nil {
			return err
		}
	}
	return nil
}

// serve runs the echo server on a loopback port, prints "ready ADDR", answers each "stats"
// line on stdin with the process's allocation count, and exits when stdin closes.
func serve() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	server := grpc.NewServer()
	server.RegisterService(&echoServiceDesc, echo{})
	go func() {
		if err := server.Serve(listener); err != nil {
			fatal(err)
		}
	}()
	fmt.Printf("ready %s\n", listener.Addr())
	lines := bufio.NewScanner(os.Stdin)
	for lines.Scan() {
		if lines.Text() == "stats" {
			fmt.Printf("stats mallocs=%d\n", mallocs())
		}
	}
	server.Stop()
}

func mallocs() uint64 {
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.Mallocs
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "volley-peer-go:", err)
	os.Exit(1)
}

// window is a run's timing: warm up until measureFrom, measure until end.
type window struct{ measureFrom, end time.Time }

// hist collects latencies in nanoseconds.
type hist struct {
	mu     sync.Mutex
	values []uint64
}

func (h *hist) add(values []uint64) {
	h.mu.Lock()
	h.values = append(h.values, values...)
	h.mu.Unlock()
}

// buckets rounds each latency down to its 11 most significant bits (the resolution of an
// HdrHistogram with 3 significant digits) and counts them: [[value, count], ...].
func (h *hist) buckets() [][2]uint64 {
	counts := map[uint64]uint64{}
	for _, v := range h.values {
		if shift := bits.Len64(v) - 11; shift > 0 {
			v = v >> uint(shift) << uint(shift)
		}
		counts[v]++
	}
	out := make([][2]uint64, 0, len(counts))
	for v, c := range counts {
		out = append(out, [2]uint64{v, c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

type result struct {
	Calls    uint64      `json:"calls"`
	ElapsedS float64     `json:"elapsed_s"`
	Mallocs  uint64      `json:"mallocs"`
	Hist     [][2]uint64 `json:"hist"`
}

func client(args []string) {
	flags := flag.NewFlagSet("client", flag.ExitOnError)
	addr := flags.String("addr", "", "server address")
	kind := flags.String("kind", "unary", "unary, stream or open")
	size := flags.Int("size", 64, "payload bytes")
	inFlight := flags.Int("in-flight", 1, "calls in flight per connection")
	conns := flags.Int("conns", 1, "connections")
	warmupMs := flags.Int("warmup-ms", 250, "warm-up")
	durationMs := flags.Int("duration-ms", 1000, "measured time")
	rate := flags.Float64("rate", 0, "open loop: calls per second")
	streamLen := flags.Int("stream-len", 1000, "stream: messages per call")
	flags.Parse(args)

	clients := make([]*grpc.ClientConn, *conns)
	for i := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := grpc.DialContext(ctx, *addr, grpc.WithInsecure(), grpc.WithBlock())
		cancel()
		if err != nil {
			fatal(err)
		}
		clients[i] = conn
	}
	data := make([]byte, *size)
	for i := range data {
		data[i] = 0x5a
	}
	start := time.Now()
	w := window{measureFrom: start.Add(time.Duration(*warmupMs) * time.Millisecond)}
	w.end = w.measureFrom.Add(time.Duration(*durationMs) * time.Millisecond)
	duration := w.end.Sub(w.measureFrom)

	// Marks the measured window on stdout, with the allocation count at each end.
	var mallocsFrom, mallocsTo uint64
	marks := make(chan struct{})
	go func() {
		time.Sleep(time.Until(w.measureFrom))
		mallocsFrom = mallocs()
		fmt.Println("measure")
		time.Sleep(time.Until(w.end))
		mallocsTo = mallocs()
		fmt.Println("end")
		close(marks)
	}()

	h := &hist{}
	var calls uint64
	var elapsed = duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	switch *kind {
	case "unary":
		for _, conn := range clients {
			for i := 0; i < *inFlight; i++ {
				wg.Add(1)
				go func(conn *grpc.ClientConn) {
					defer wg.Done()
					n, values := closedLoop(w, func() {
						out := new(Payload)
						if err := conn.Invoke(context.Background(), "/bench.Echo/Echo", &Payload{Data: data}, out); err != nil {
							fatal(err)
						}
					})
					h.add(values)
					mu.Lock()
					calls += n
					mu.Unlock()
				}(conn)
			}
		}
		wg.Wait()
	case "stream":
		request := make([]byte, *size)
		copy(request, data)
		binary.LittleEndian.PutUint32(request, uint32(*streamLen))
		var values []uint64
		for {
			started := time.Now()
			if !started.Before(w.end) {
				break
			}
			got := feed(clients[0], request)
			if got != uint64(*streamLen) {
				fatal(fmt.Errorf("short stream: %d messages", got))
			}
			if !started.Before(w.measureFrom) {
				values = append(values, nanos(time.Since(started)))
				calls += got
			}
		}
		h.add(values)
	case "open":
		calls, elapsed = openLoop(clients[0], data, *rate, start, w, h)
	default:
		fatal(fmt.Errorf("unknown kind %q", *kind))
	}
	<-marks
	for _, conn := range clients {
		conn.Close()
	}
	var mallocsInWindow uint64
	if mallocsTo > mallocsFrom {
		mallocsInWindow = mallocsTo - mallocsFrom
	}
	line, err := json.Marshal(result{Calls: calls, ElapsedS: elapsed.Seconds(), Mallocs: mallocsInWindow, Hist: h.buckets()})
	if err != nil {
		fatal(err)
	}
	fmt.Printf("result %s\n", line)
}

func nanos(d time.Duration) uint64 {
	if d < 1 {
		return 1
	}
	return uint64(d)
}

// closedLoop makes call one at a time until the window ends; returns the calls started in the
// measured part and their latencies.
func closedLoop(w window, call func()) (uint64, []uint64) {
	var values []uint64
	for {
		started := time.Now()
		if !started.Before(w.end) {
			break
		}
		call()
		if !started.Before(w.measureFrom) {
			values = append(values, nanos(time.Since(started)))
		}
	}
	return uint64(len(values)), values
}

var feedDescClient = grpc.StreamDesc{StreamName: "Feed", ServerStreams: true}

// feed makes one server-streaming call and returns how many messages came.
func feed(conn *grpc.ClientConn, request []byte) uint64 {
	stream, err := conn.NewStream(context.Background(), &feedDescClient, "/bench.Echo/Feed")
	if err != nil {
		fatal(err)
	}
	if err := stream.SendMsg(&Payload{Data: request}); err != nil {
		fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		fatal(err)
	}
	var got uint64
	for {
		out := new(Payload)
		err := stream.RecvMsg(out)
		if err == io.EOF {
			return got
		}
		if err != nil {
			fatal(err)
		}
		got++
	}
}

// openLoop sends calls at rate per second, each at its intended time or as soon after as
// possible, and records latency from the intended time (no coordinated omission); calls still
// due when the window ends are not sent. Returns the calls sent in the measured part and the
// time from its start until the last of them finished (at least the window's length).
func openLoop(conn *grpc.ClientConn, data []byte, rate float64, start time.Time, w window, h *hist) (uint64, time.Duration) {
	interval := time.Duration(float64(time.Second) / rate)
	permits := make(chan struct{}, openLoopMaxInFlight)
	var mu sync.Mutex
	var values []uint64
	var lastDone time.Time
	var wg sync.WaitGroup
	var recorded uint64
	for sent := 0; ; sent++ {
		intended := start.Add(interval * time.Duration(sent))
		if !intended.Before(w.end) {
			break
		}
		now := time.Now()
		if !now.Before(w.end) {
			break
		}
		if intended.After(now) {
			time.Sleep(intended.Sub(now))
		}
		permits <- struct{}{}
		measured := !intended.Before(w.measureFrom)
		if measured {
			recorded++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := new(Payload)
			if err := conn.Invoke(context.Background(), "/bench.Echo/Echo", &Payload{Data: data}, out); err != nil {
				fatal(err)
			}
			done := time.Now()
			if measured {
				mu.Lock()
				values = append(values, nanos(done.Sub(intended)))
				if done.After(lastDone) {
					lastDone = done
				}
				mu.Unlock()
			}
			<-permits
		}()
	}
	wg.Wait()
	h.add(values)
	elapsed := w.end.Sub(w.measureFrom)
	if lastDone.Sub(w.measureFrom) > elapsed {
		elapsed = lastDone.Sub(w.measureFrom)
	}
	return recorded, elapsed
}
