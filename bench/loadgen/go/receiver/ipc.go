package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// maxMessageBytes bounds one control message from the orchestrator (a handshake
// run's token pool is the largest: 20,000 tokens of about 200 bytes).
const maxMessageBytes = 64 << 20

// channel is Node's child_process IPC channel in its default `json`
// serialization: one JSON document per line on the socket whose number the
// parent puts in NODE_CHANNEL_FD.
type channel struct {
	fd      int
	pending []byte
}

func openChannel() (*channel, error) {
	v := os.Getenv("NODE_CHANNEL_FD")
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 {
		return nil, fmt.Errorf("NODE_CHANNEL_FD is %q: start this worker from bench/loadgen/index.ts with an 'ipc' stdio entry", v)
	}
	if mode := os.Getenv("NODE_CHANNEL_SERIALIZATION_MODE"); mode != "" && mode != "json" {
		return nil, fmt.Errorf("the IPC channel uses %q serialization; only json is understood", mode)
	}
	// Reads happen only when epoll says the socket is readable; writes may then block briefly.
	if err := syscall.SetNonblock(fd, false); err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	return &channel{fd: fd}, nil
}

// readMessages reads what is there and returns the complete messages; io
// errors and end of file (the orchestrator went away) come back as err.
func (ch *channel) readMessages(buf []byte) ([]toWorker, error) {
	n, err := syscall.Read(ch.fd, buf)
	if n <= 0 {
		if err == syscall.EINTR || err == syscall.EAGAIN {
			return nil, nil
		}
		if err == nil {
			err = fmt.Errorf("the orchestrator closed the IPC channel")
		}
		return nil, err
	}
	ch.pending = append(ch.pending, buf[:n]...)
	var out []toWorker
	for {
		nl := bytes.IndexByte(ch.pending, '\n')
		if nl < 0 {
			break
		}
		line := ch.pending[:nl]
		var m toWorker
		if err := json.Unmarshal(line, &m); err != nil {
			return out, fmt.Errorf("bad IPC message %.80q: %w", line, err)
		}
		out = append(out, m)
		ch.pending = ch.pending[nl+1:]
	}
	if len(ch.pending) > maxMessageBytes {
		return out, fmt.Errorf("an IPC message is longer than %d bytes", maxMessageBytes)
	}
	if len(ch.pending) == 0 {
		ch.pending = nil
	}
	return out, nil
}

// send writes one message as a JSON line.
func (ch *channel) send(m any) {
	b, err := json.Marshal(m)
	if err != nil {
		fatalf("cannot encode %T: %v", m, err)
	}
	b = append(b, '\n')
	for len(b) > 0 {
		n, err := syscall.Write(ch.fd, b)
		if err == syscall.EINTR || err == syscall.EAGAIN {
			continue
		}
		if err != nil {
			os.Exit(0) // the orchestrator is gone: nobody to report to
		}
		b = b[n:]
	}
}

// Messages of bench/loadgen/messages.ts that this worker handles.

type target struct {
	Host     string            `json:"host"`
	Port     int               `json:"port"`
	Protocol string            `json:"protocol"`
	Path     string            `json:"path"`
	Headers  map[string]string `json:"headers"`
	addr     [4]byte
}

type workerRoom struct {
	Name           string  `json:"name"`
	Subscribers    int     `json:"subscribers"`
	Slow           int     `json:"slow"`
	Publishers     int     `json:"publishers"`
	FirstPublisher int     `json:"firstPublisher"`
	Target         *target `json:"target"`
}

type toWorker struct {
	Type     string       `json:"type"`
	Target   *target      `json:"target"`
	Worker   int          `json:"worker"`
	Rooms    []workerRoom `json:"rooms"`
	CountAll bool         `json:"countAll"`
	StartAt  float64      `json:"startAt"`
	WinStart float64      `json:"winStart"`
	WinEnd   float64      `json:"winEnd"`
	// handshake mode
	Concurrency int         `json:"concurrency"`
	DurationMs  int         `json:"durationMs"`
	HeaderPool  *headerPool `json:"headerPool"`
}

type connectedMsg struct {
	Type      string `json:"type"`
	Connected int    `json:"connected"`
	Failures  int    `json:"failures"`
}

type progressMsg struct {
	Type      string `json:"type"`
	Delivered int64  `json:"delivered"`
	Pending   int    `json:"pending"`
}

type typeMsg struct {
	Type string `json:"type"`
}

type resultMsg struct {
	Type            string           `json:"type"`
	SentByRoom      map[string]int64 `json:"sentByRoom"`
	SentTotal       int64            `json:"sentTotal"`
	Delivered       int64            `json:"delivered"`
	WindowDelivered int64            `json:"windowDelivered"`
	WindowReads     int64            `json:"windowReads"`
	Histogram       []int64          `json:"histogram"`
	MaxUs           int64            `json:"maxUs"`
	CPUUs           int64            `json:"cpuUs"`
	SlowMembers     int              `json:"slowMembers"`
	SlowClosed      int              `json:"slowClosed"`
	SlowFrames      int64            `json:"slowFrames"`
	PushesTotal     int64            `json:"pushesTotal"`
	PublishAccepted int64            `json:"publishAccepted"`
	PublishFailed   int64            `json:"publishFailed"`
	PublishError    string           `json:"publishError"`
}

// headerPool is a handshake run's header whose value changes per connection (HeaderPool).
type headerPool struct {
	Name   string   `json:"name"`
	Values []string `json:"values"`
}

// handshakesMsg reports a handshake run.
type handshakesMsg struct {
	Type         string  `json:"type"`
	Upgrades     int     `json:"upgrades"`
	Failures     int     `json:"failures"`
	Histogram    []int64 `json:"histogram"`
	MaxUs        int64   `json:"maxUs"`
	CPUUs        int64   `json:"cpuUs"`
	ElapsedMs    float64 `json:"elapsedMs"`
	HeaderReuses int     `json:"headerReuses"`
}
