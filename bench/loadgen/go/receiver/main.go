// Command receiver is the load generator's receive path in Go: a drop-in
// worker for bench/loadgen/index.ts's fan-out mode on plain WebSocket
// targets. It speaks the worker messages of bench/loadgen/messages.ts over
// Node's IPC channel, opens the subscribers of its rooms, and counts their
// deliveries with the same window, latency histogram, slow-subscriber and
// self-test (`countAll`) rules as the Node worker (bench/loadgen/worker.ts).
// Publishers stay in Node workers. One thread, one epoll set, one 256 KiB
// read buffer: a frame costs a header check and, for stamped frames, an
// 8-byte read. It also runs the handshake mode (handshake.go): connect →
// upgrade → close loops, as the Node worker's handshake mode.
package main

import (
	"crypto/rand"
	"fmt"
	"math"
	"os"
	"runtime"
	"syscall"
	"time"
)

const (
	connectTimeoutMs = 10_000
	maxConnecting    = 256
	readBufferBytes  = 256 * 1024
	channelTag       = -1
)

// worker holds this process's connections and counters.
type worker struct {
	epfd   int
	ch     *channel
	buf    []byte
	index  int
	cursor int
	conns  []*conn
	nowMs  float64
	hist   *histogram
	rooms  map[string]int64

	winStart, winEnd float64
	countAll         bool
	delivered        int64
	slowFrames       int64
	reads            int64
	windowDelivered  int64
	windowReads      int64
	cpuStart         int64
	cpuUs            int64

	// connect phase
	connecting bool
	next       int
	pending    int
	failures   int

	// window timers (absolute epoch ms; NaN when not armed)
	atWinStart, atWinEnd float64
	// drain of the slow subscribers
	draining                  bool
	drainLast                 int64
	drainQuietSince, drainBeg float64
}

var theWorker *worker

func main() {
	runtime.GOMAXPROCS(1)
	ch, err := openChannel()
	if err != nil {
		fatalf("%v", err)
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		fatalf("epoll_create1: %v", err)
	}
	w := &worker{
		epfd: epfd, ch: ch, buf: make([]byte, readBufferBytes), hist: newHistogram(),
		rooms: map[string]int64{}, winStart: math.Inf(1), winEnd: math.Inf(-1),
		atWinStart: math.NaN(), atWinEnd: math.NaN(),
	}
	theWorker = w
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: channelTag}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, ch.fd, &ev); err != nil {
		fatalf("epoll_ctl: %v", err)
	}
	w.loop()
}

func (w *worker) loop() {
	events := make([]syscall.EpollEvent, 512)
	for {
		n, err := syscall.EpollWait(w.epfd, events, w.waitMs())
		if err != nil && err != syscall.EINTR {
			fatalf("epoll_wait: %v", err)
		}
		for i := 0; i < n; i++ {
			tag := events[i].Fd
			if tag == channelTag {
				w.control()
				continue
			}
			if c := w.conns[tag]; c.state != stateClosed {
				c.handle(w, events[i].Events)
			}
		}
		w.timers()
	}
}

// waitMs is how long epoll may wait: until the next timer, at most 100 ms.
func (w *worker) waitMs() int {
	wait := 100.0
	now := nowEpochMs()
	for _, at := range []float64{w.atWinStart, w.atWinEnd} {
		if !math.IsNaN(at) {
			wait = math.Min(wait, at-now)
		}
	}
	if w.draining {
		wait = math.Min(wait, 50)
	}
	if wait < 0 {
		return 0
	}
	return int(math.Ceil(wait))
}

func (w *worker) timers() {
	now := nowEpochMs()
	if !math.IsNaN(w.atWinStart) && now >= w.atWinStart {
		w.atWinStart = math.NaN()
		for _, c := range w.conns {
			if c.slow {
				c.pause(w)
			}
		}
		w.cpuStart = cpuMicros()
		w.windowDelivered = -w.delivered
		w.windowReads = -w.reads
	}
	if !math.IsNaN(w.atWinEnd) && now >= w.atWinEnd {
		w.atWinEnd = math.NaN()
		w.windowDelivered += w.delivered
		w.windowReads += w.reads
		w.cpuUs = cpuMicros() - w.cpuStart
	}
	if w.connecting {
		for _, c := range w.conns {
			if !c.settled && c.deadlineMs > 0 && now >= c.deadlineMs {
				c.fail(w)
			}
		}
	}
	if w.draining {
		if w.slowFrames != w.drainLast {
			w.drainLast = w.slowFrames
			w.drainQuietSince = now
		}
		if now-w.drainQuietSince >= 300 || now-w.drainBeg >= 3000 {
			w.draining = false
			w.ch.send(typeMsg{Type: "drained"})
		}
	}
}

// control handles the orchestrator's messages.
func (w *worker) control() {
	msgs, err := w.ch.readMessages(w.buf)
	for _, m := range msgs {
		switch m.Type {
		case "fanout":
			w.setup(m)
		case "handshake":
			w.handshakes(m)
		case "start":
			if !w.countAll {
				w.winStart, w.winEnd = m.WinStart, m.WinEnd
			}
			w.atWinStart, w.atWinEnd = m.WinStart, m.WinEnd
		case "poll":
			w.ch.send(progressMsg{Type: "progress", Delivered: w.delivered})
		case "drain":
			for _, c := range w.conns {
				if c.slow {
					c.resume(w)
				}
			}
			now := nowEpochMs()
			w.draining, w.drainLast, w.drainQuietSince, w.drainBeg = true, -1, now, now
		case "collect":
			w.collect()
		case "release":
			w.release()
		default:
			fatalf("the Go receiver has no %q mode (fan-out subscribers and handshakes only)", m.Type)
		}
	}
	if err != nil {
		w.closeAll()
		if len(msgs) == 0 || msgs[len(msgs)-1].Type != "release" {
			os.Exit(0)
		}
	}
}

// setup opens every subscriber of the worker's rooms, at most maxConnecting at once.
func (w *worker) setup(m toWorker) {
	w.index = m.Worker
	w.countAll = m.CountAll
	if w.countAll {
		// The line-rate peer writes as soon as everyone is connected, before `start`.
		w.winStart, w.winEnd = math.Inf(-1), math.Inf(1)
	}
	resolved := map[string][4]byte{}
	resolve := func(t *target) *target {
		if t.Protocol != "ws" {
			fatalf("the Go receiver speaks plain WebSocket only, not %q", t.Protocol)
		}
		addr, ok := resolved[t.Host]
		if !ok {
			a, err := resolveIPv4(t.Host)
			if err != nil {
				fatalf("%v", err)
			}
			addr = a
			resolved[t.Host] = a
		}
		t.addr = addr
		return t
	}
	base := resolve(m.Target)
	for _, room := range m.Rooms {
		if room.Publishers > 0 {
			fatalf("the Go receiver opens subscribers only; room %q asks for %d publishers", room.Name, room.Publishers)
		}
		t := base
		if room.Target != nil {
			t = resolve(room.Target)
		}
		w.rooms[room.Name] = 0
		for i := 0; i < room.Subscribers; i++ {
			w.conns = append(w.conns, &conn{id: int32(len(w.conns)), fd: -1, target: t, room: room.Name, slow: i < room.Slow})
		}
	}
	w.connecting = true
	w.launch()
}

// launch starts connects while fewer than maxConnecting are under way; the
// last one settled sends 'connected'.
func (w *worker) launch() {
	for w.pending < maxConnecting && w.next < len(w.conns) {
		c := w.conns[w.next]
		w.next++
		w.pending++
		c.open(w)
	}
	if w.connecting && w.pending == 0 && w.next == len(w.conns) {
		w.connecting = false
		ready := 0
		for _, c := range w.conns {
			if c.ready && c.state != stateClosed {
				ready++
			}
		}
		w.ch.send(connectedMsg{Type: "connected", Connected: ready, Failures: w.failures})
	}
}

// settle ends a connection's connect phase once, successful or not.
func (w *worker) settle(c *conn, ok bool) {
	if c.settled {
		return
	}
	c.settled = true
	w.pending--
	if !ok {
		w.failures++
	}
	w.launch()
}

// nextLocalAddress spreads sources over 127.0.0.2–254, staggered per worker, as the Node worker does.
func (w *worker) nextLocalAddress() [4]byte {
	x := 2 + (w.cursor+w.index*61)%253
	w.cursor++
	return [4]byte{127, 0, 0, byte(x)}
}

func (w *worker) collect() {
	slowMembers, slowClosed := 0, 0
	for _, c := range w.conns {
		if c.slow {
			slowMembers++
			if c.closedByServer {
				slowClosed++
			}
		}
	}
	w.ch.send(resultMsg{
		Type:            "result",
		SentByRoom:      w.rooms,
		Delivered:       w.delivered,
		WindowDelivered: w.windowDelivered,
		WindowReads:     w.windowReads,
		Histogram:       w.hist.counts,
		MaxUs:           w.hist.maxUs,
		CPUUs:           w.cpuUs,
		SlowMembers:     slowMembers,
		SlowClosed:      slowClosed,
		SlowFrames:      w.slowFrames,
	})
}

func (w *worker) closeAll() {
	for _, c := range w.conns {
		c.close(w)
	}
}

func (w *worker) release() {
	w.closeAll()
	w.ch.send(typeMsg{Type: "released"})
	os.Exit(0)
}

// nowEpochMs is the wall clock in ms since the epoch, the scale of the
// Node side's performance.timeOrigin + performance.now() stamps.
func nowEpochMs() float64 {
	return float64(time.Now().UnixNano()) / 1e6
}

// cpuMicros is this process's user + system CPU time in µs.
func cpuMicros() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano()/1000 + ru.Stime.Nano()/1000
}

func randRead(b []byte) (int, error) { return rand.Read(b) }

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go receiver: "+format+"\n", args...)
	os.Exit(2)
}
