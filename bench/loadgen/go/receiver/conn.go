package main

import (
	"bytes"
	"syscall"
)

// Connection states.
const (
	stateConnecting = iota // TCP connect under way
	stateUpgrading         // request sent, waiting for the 101 response
	stateOpen              // WebSocket frames
	stateClosed
)

// maxResponseHead bounds the upgrade response's head; a longer one fails the connection.
const maxResponseHead = 16 * 1024

var headerEnd = []byte("\r\n\r\n")

// conn is one subscriber connection.
type conn struct {
	id             int32
	fd             int
	state          int
	target         *target
	room           string
	slow           bool
	paused         bool
	ready          bool
	settled        bool
	closedByServer bool
	closingByUs    bool
	deadlineMs     float64
	head           []byte
	out            []byte
	mask           [4]byte
	frames         frameReader
}

// open starts a non-blocking connect from the next loopback source address.
func (c *conn) open(w *worker) {
	c.deadlineMs = nowEpochMs() + connectTimeoutMs
	_, _ = randRead(c.mask[:])
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		c.fd = -1
		c.fail(w)
		return
	}
	c.fd = fd
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	if c.target.addr[0] == 127 {
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: w.nextLocalAddress()}); err != nil {
			c.fail(w)
			return
		}
	}
	err = syscall.Connect(fd, &syscall.SockaddrInet4{Port: c.target.Port, Addr: c.target.addr})
	if err != nil && err != syscall.EINPROGRESS {
		c.fail(w)
		return
	}
	c.state = stateConnecting
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT, Fd: c.id}
	if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		c.fail(w)
	}
}

// handle reacts to one epoll event of this connection.
func (c *conn) handle(w *worker, events uint32) {
	switch c.state {
	case stateConnecting:
		soErr, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_ERROR)
		if err != nil || soErr != 0 {
			c.fail(w)
			return
		}
		if events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) == 0 {
			return
		}
		c.state = stateUpgrading
		t := c.target
		c.write(w, upgradeRequest(t.Host, t.Port, roomPath(t.Path, c.room), t.Headers))
	case stateUpgrading, stateOpen:
		if events&syscall.EPOLLOUT != 0 && len(c.out) > 0 {
			c.flush(w)
		}
		if events&(syscall.EPOLLIN|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			c.read(w)
		}
	}
}

// read takes what one read gives: the upgrade response, then frames.
func (c *conn) read(w *worker) {
	n, err := syscall.Read(c.fd, w.buf)
	if n <= 0 {
		if err == syscall.EAGAIN || err == syscall.EINTR {
			return
		}
		c.lost(w)
		return
	}
	w.nowMs = nowEpochMs()
	if c.state == stateOpen {
		w.reads++
		c.frames.feed(w.buf[:n], c)
		return
	}
	c.head = append(c.head, w.buf[:n]...)
	end := bytes.Index(c.head, headerEnd)
	if end < 0 {
		if len(c.head) > maxResponseHead {
			c.fail(w)
		}
		return
	}
	if !bytes.HasPrefix(c.head, []byte("HTTP/1.1 101")) {
		c.fail(w)
		return
	}
	rest := c.head[end+4:]
	c.head = nil
	c.state = stateOpen
	c.ready = true
	w.settle(c, true)
	if len(rest) > 0 {
		c.frames.feed(rest, c)
	}
}

// onFrame counts a delivery, answers a ping, or closes on a close frame.
func (c *conn) onFrame(opcode byte, prefix []byte) {
	w := theWorker
	switch opcode {
	case opBinary:
		if len(prefix) < stampBytes {
			return
		}
		if c.slow {
			w.slowFrames++
			return
		}
		ts := readStamp(prefix)
		if ts >= w.winStart && ts < w.winEnd {
			w.delivered++
			w.hist.record((w.nowMs - ts) * 1000)
		}
	case opPing:
		c.write(w, maskedFrame(opPong, prefix, c.mask))
	case opClose:
		c.closedByServer = true
		c.close(w)
	}
}

// write sends bytes, keeping what the socket does not take for EPOLLOUT.
func (c *conn) write(w *worker, b []byte) {
	if c.state == stateClosed {
		return
	}
	if len(c.out) > 0 {
		c.out = append(c.out, b...)
		return
	}
	n, err := syscall.Write(c.fd, b)
	if err != nil && err != syscall.EAGAIN {
		c.lost(w)
		return
	}
	if n < 0 {
		n = 0
	}
	if n < len(b) {
		c.out = append(c.out, b[n:]...)
		c.watch(w)
	} else if c.state == stateUpgrading {
		c.watch(w)
	}
}

func (c *conn) flush(w *worker) {
	n, err := syscall.Write(c.fd, c.out)
	if err != nil && err != syscall.EAGAIN {
		c.lost(w)
		return
	}
	if n > 0 {
		c.out = c.out[n:]
	}
	if len(c.out) == 0 {
		c.out = nil
		c.watch(w)
	}
}

// watch sets the epoll interest: readable always (unless paused), writable while output waits.
func (c *conn) watch(w *worker) {
	if c.paused || c.state == stateClosed {
		return
	}
	events := uint32(syscall.EPOLLIN)
	if len(c.out) > 0 {
		events |= syscall.EPOLLOUT
	}
	ev := syscall.EpollEvent{Events: events, Fd: c.id}
	_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
}

// pause stops reading (a slow subscriber at the window's start); resume reads again.
func (c *conn) pause(w *worker) {
	if c.state == stateClosed || c.paused {
		return
	}
	c.paused = true
	_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
}

func (c *conn) resume(w *worker) {
	if c.state == stateClosed || !c.paused {
		return
	}
	c.paused = false
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: c.id}
	_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev)
}

// fail gives up on a connection that never became ready (or breaks one that was).
func (c *conn) fail(w *worker) {
	w.settle(c, false)
	c.close(w)
}

// lost: the socket ended or errored, the server's doing unless we closed it.
func (c *conn) lost(w *worker) {
	if !c.closingByUs {
		c.closedByServer = true
	}
	c.fail(w)
}

func (c *conn) close(w *worker) {
	c.closingByUs = c.closingByUs || !c.closedByServer
	if c.state == stateClosed {
		return
	}
	c.state = stateClosed
	if c.fd >= 0 {
		_ = syscall.Close(c.fd)
	}
	c.out = nil
	c.head = nil
}

// maskedFrame is a client frame (FIN set) of a payload of at most 125 bytes.
func maskedFrame(opcode byte, payload []byte, mask [4]byte) []byte {
	f := make([]byte, 6+len(payload))
	f[0] = 0x80 | opcode
	f[1] = 0x80 | byte(len(payload))
	copy(f[2:6], mask[:])
	for i, b := range payload {
		f[6+i] = b ^ mask[i&3]
	}
	return f
}
