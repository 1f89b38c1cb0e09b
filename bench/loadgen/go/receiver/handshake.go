package main

import (
	"bytes"

	"syscall"
)

// The handshake mode: `concurrency` loops of connect → upgrade request →
// 101 → close frame → the server closes, for `durationMs`, as the Node
// worker's handshake mode does (bench/loadgen/worker.ts runHandshakes). An
// attempt that gets no complete answer within handshakeTimeoutMs, an answer
// other than 101, or a reset before the answer counts as a failure; the
// connect-to-101 time of every upgrade goes into the histogram.

const (
	handshakeTimeoutMs = 5_000
	maxAnswerBytes     = 16 * 1024
)

const (
	hsConnecting = iota
	hsAwaiting101
	hsClosing
)

// attempt is one connection of one loop.
type attempt struct {
	fd     int
	state  int
	begun  float64
	answer []byte
}

type handshakeRun struct {
	w         *worker
	epfd      int
	t         *target
	path      string
	pool      *headerPool
	cursor    int
	reuses    int
	deadline  float64
	slots     []*attempt
	running   int
	upgrades  int
	failures  int
	hist      *histogram
	closeWire []byte
}

func (w *worker) handshakes(m toWorker) {
	t := m.Target
	if t == nil || t.Protocol != "ws" {
		fatalf("the Go handshake mode speaks plain WebSocket only")
	}
	addr, err := resolveIPv4(t.Host)
	if err != nil {
		fatalf("%v", err)
	}
	t.addr = addr
	w.index = m.Worker
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		fatalf("epoll_create1: %v", err)
	}
	var mask [4]byte
	_, _ = randRead(mask[:])
	r := &handshakeRun{
		w: w, epfd: epfd, t: t, path: roomPath(t.Path, "handshake"), pool: m.HeaderPool,
		hist: newHistogram(), closeWire: maskedFrame(0x8, []byte{0x03, 0xe8}, mask),
	}
	t0 := nowEpochMs()
	cpu0 := cpuMicros()
	r.deadline = t0 + float64(m.DurationMs)
	r.slots = make([]*attempt, m.Concurrency)
	r.running = m.Concurrency
	for i := range r.slots {
		r.slots[i] = &attempt{fd: -1}
		r.next(i)
	}
	events := make([]syscall.EpollEvent, 512)
	lastScan := t0
	for r.running > 0 {
		n, err := syscall.EpollWait(epfd, events, 50)
		if err != nil && err != syscall.EINTR {
			fatalf("epoll_wait: %v", err)
		}
		for i := 0; i < n; i++ {
			r.handle(int(events[i].Fd), events[i].Events)
		}
		if now := nowEpochMs(); now-lastScan >= 50 {
			lastScan = now
			r.expire(now)
		}
	}
	syscall.Close(epfd)
	w.ch.send(handshakesMsg{
		Type: "handshakes", Upgrades: r.upgrades, Failures: r.failures,
		Histogram: r.hist.counts, MaxUs: r.hist.maxUs, CPUUs: cpuMicros() - cpu0,
		ElapsedMs: nowEpochMs() - t0, HeaderReuses: r.reuses,
	})
}

// next starts slot i's next attempt, or retires the loop past the deadline.
func (r *handshakeRun) next(i int) {
	a := r.slots[i]
	a.fd, a.answer = -1, a.answer[:0]
	for {
		now := nowEpochMs()
		if now >= r.deadline {
			r.running--
			return
		}
		a.begun = now
		if r.connect(i, a) {
			return
		}
		r.failures++
	}
}

// connect opens a non-blocking socket from the next source address and starts its connect.
func (r *handshakeRun) connect(i int, a *attempt) bool {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: r.w.nextLocalAddress()}); err != nil {
		syscall.Close(fd)
		return false
	}
	err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: r.t.Port, Addr: r.t.addr})
	if err != nil && err != syscall.EINPROGRESS {
		syscall.Close(fd)
		return false
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLOUT, Fd: int32(i)}
	if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		syscall.Close(fd)
		return false
	}
	a.fd, a.state = fd, hsConnecting
	return true
}

// request is the upgrade request of the next attempt, with the next pool value if there is a pool.
func (r *handshakeRun) request() []byte {
	headers := r.t.Headers
	if r.pool != nil && len(r.pool.Values) > 0 {
		n := len(r.pool.Values)
		if r.cursor >= n {
			r.reuses++
		}
		headers = make(map[string]string, len(r.t.Headers)+1)
		for k, v := range r.t.Headers {
			headers[k] = v
		}
		headers[r.pool.Name] = r.pool.Values[r.cursor%n]
		r.cursor++
	}
	return upgradeRequest(r.t.Host, r.t.Port, r.path, headers)
}

func (r *handshakeRun) handle(i int, events uint32) {
	a := r.slots[i]
	if a.fd < 0 {
		return
	}
	switch a.state {
	case hsConnecting:
		if soErr, err := syscall.GetsockoptInt(a.fd, syscall.SOL_SOCKET, syscall.SO_ERROR); err != nil || soErr != 0 {
			r.end(i, true)
			return
		}
		if !writeAll(a.fd, r.request()) {
			r.end(i, true)
			return
		}
		a.state = hsAwaiting101
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
		if err := syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_MOD, a.fd, &ev); err != nil {
			r.end(i, true)
		}
	case hsAwaiting101:
		n, err := syscall.Read(a.fd, r.w.buf)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			return
		}
		if n <= 0 {
			r.end(i, true)
			return
		}
		a.answer = append(a.answer, r.w.buf[:n]...)
		end := bytes.Index(a.answer, []byte("\r\n\r\n"))
		if end < 0 {
			if len(a.answer) > maxAnswerBytes {
				r.end(i, true)
			}
			return
		}
		if !bytes.HasPrefix(a.answer, []byte("HTTP/1.1 101")) {
			r.end(i, true)
			return
		}
		r.hist.record((nowEpochMs() - a.begun) * 1000)
		r.upgrades++
		// The server answers our close frame and closes TCP first, so TIME_WAIT stays on its side.
		a.state = hsClosing
		if !writeAll(a.fd, r.closeWire) {
			r.end(i, false)
		}
	case hsClosing:
		n, err := syscall.Read(a.fd, r.w.buf)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			return
		}
		if n <= 0 {
			r.end(i, false)
		}
		// The server's close frame: wait for its FIN.
	}
}

// end closes slot i's socket (a failure when `failed`) and starts its next attempt.
func (r *handshakeRun) end(i int, failed bool) {
	a := r.slots[i]
	_ = syscall.EpollCtl(r.epfd, syscall.EPOLL_CTL_DEL, a.fd, nil)
	syscall.Close(a.fd)
	a.fd = -1
	if failed {
		r.failures++
	}
	r.next(i)
}

// expire ends attempts older than handshakeTimeoutMs: a failure before the 101, a plain close after it.
func (r *handshakeRun) expire(now float64) {
	for i, a := range r.slots {
		if a.fd >= 0 && now-a.begun >= handshakeTimeoutMs {
			r.end(i, a.state != hsClosing)
		}
	}
}

// writeAll writes a small buffer to a fresh socket; false when the kernel did not take all of it.
func writeAll(fd int, b []byte) bool {
	n, err := syscall.Write(fd, b)
	return err == nil && n == len(b)
}
