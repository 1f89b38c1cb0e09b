package main

import (
	"encoding/binary"
	"math"
	"syscall"
	"testing"
)

// serverFrame is an unmasked (or, with mask, masked) frame with FIN set.
func serverFrame(opcode byte, payload []byte, mask *[4]byte) []byte {
	n := len(payload)
	var head []byte
	switch {
	case n < 126:
		head = []byte{0x80 | opcode, byte(n)}
	case n < 65536:
		head = []byte{0x80 | opcode, 126, byte(n >> 8), byte(n)}
	default:
		head = make([]byte, 10)
		head[0], head[1] = 0x80|opcode, 127
		binary.BigEndian.PutUint64(head[2:], uint64(n))
	}
	body := append([]byte(nil), payload...)
	if mask != nil {
		head[1] |= 0x80
		head = append(head, mask[:]...)
		for i := range body {
			body[i] ^= mask[i&3]
		}
	}
	return append(head, body...)
}

func stamped(ms float64, size int) []byte {
	p := make([]byte, size)
	binary.LittleEndian.PutUint64(p, math.Float64bits(ms))
	return p
}

// A stream of frames of every length form, masked and not, with pings and
// short payloads, fed at every kind of split, is read exactly: every
// stamped binary frame counted once, a ping answered, nothing else counted.
func TestFrameReaderCountsAcrossSplits(t *testing.T) {
	mask := [4]byte{0x11, 0x22, 0x33, 0x44}
	var stream []byte
	want := 0
	for i, size := range []int{12, 16, 64, 125, 126, 300, 65535, 65536, 70000} {
		stream = append(stream, serverFrame(opBinary, stamped(1000+float64(i), size), nil)...)
		stream = append(stream, serverFrame(opBinary, stamped(2000+float64(i), size), &mask)...)
		want += 2
	}
	stream = append(stream, serverFrame(opBinary, make([]byte, 11), nil)...) // too short for a stamp
	stream = append(stream, serverFrame(0x1, []byte("text"), nil)...)
	stream = append(stream, serverFrame(opPing, []byte("hello"), nil)...)
	stream = append(stream, serverFrame(opBinary, nil, nil)...)

	for _, step := range []int{1, 2, 3, 7, 13, 977, 4096, len(stream)} {
		w := &worker{hist: newHistogram(), winStart: 0, winEnd: 1e18, nowMs: 5000}
		theWorker = w
		pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		c := &conn{state: stateOpen, fd: pair[0], mask: mask}
		for at := 0; at < len(stream); at += step {
			end := at + step
			if end > len(stream) {
				end = len(stream)
			}
			c.frames.feed(stream[at:end], c)
		}
		if int(w.delivered) != want {
			t.Fatalf("split %d: counted %d of %d", step, w.delivered, want)
		}
		// the ping was answered once, with a masked pong carrying its payload
		pong := make([]byte, 64)
		n, err := syscall.Read(pair[1], pong)
		if err != nil || n != 6+5 || pong[0] != 0x80|opPong || pong[1] != 0x80|5 {
			t.Fatalf("split %d: pong % x (%v)", step, pong[:n], err)
		}
		for i := 0; i < 5; i++ {
			pong[6+i] ^= pong[2+i&3]
		}
		if string(pong[6:11]) != "hello" {
			t.Fatalf("split %d: pong payload %q", step, pong[6:11])
		}
		syscall.Close(pair[0])
		syscall.Close(pair[1])
		// every stamp was read right: latencies are 5000 - 1000.. and 5000 - 2000.. ms
		if w.hist.maxUs != 4_000_000 {
			t.Fatalf("split %d: max latency %d µs", step, w.hist.maxUs)
		}
	}
}

// A frame cut short is not counted until its last byte arrives.
func TestFrameReaderWaitsForWholeFrame(t *testing.T) {
	w := &worker{hist: newHistogram(), winStart: 0, winEnd: 1e18, nowMs: 10}
	theWorker = w
	c := &conn{state: stateOpen, fd: -1}
	f := serverFrame(opBinary, stamped(1, 64), nil)
	c.frames.feed(f[:len(f)-1], c)
	if w.delivered != 0 {
		t.Fatal("counted an incomplete frame")
	}
	c.frames.feed(f[len(f)-1:], c)
	if w.delivered != 1 {
		t.Fatal("did not count the completed frame")
	}
}

// The window: stamps outside [winStart, winEnd) are not deliveries; slow members count apart.
func TestDeliveryWindowAndSlowMembers(t *testing.T) {
	w := &worker{hist: newHistogram(), winStart: 100, winEnd: 200, nowMs: 300}
	theWorker = w
	c := &conn{state: stateOpen, fd: -1}
	for _, ts := range []float64{99, 100, 150, 199.9, 200} {
		c.frames.feed(serverFrame(opBinary, stamped(ts, 16), nil), c)
	}
	if w.delivered != 3 {
		t.Fatalf("delivered %d, want 3", w.delivered)
	}
	slow := &conn{state: stateOpen, fd: -1, slow: true}
	slow.frames.feed(serverFrame(opBinary, stamped(150, 16), nil), slow)
	if w.delivered != 3 || w.slowFrames != 1 {
		t.Fatalf("slow member: delivered %d, slow frames %d", w.delivered, w.slowFrames)
	}
}

// The buckets match bench/loadgen/histogram.ts: exact below 256 µs, 128 per power of two above.
func TestHistogramBuckets(t *testing.T) {
	cases := map[int64]int{0: 0, 255: 255, 256: 256, 257: 256, 258: 257, 511: 383, 512: 384, 1_000_000: 1780, 59_999_999: 2532}
	for us, want := range cases {
		if got := bucketOf(us); got != want {
			t.Fatalf("bucketOf(%d) = %d, want %d", us, got, want)
		}
	}
	if histogramBuckets != 2533 {
		t.Fatalf("%d buckets", histogramBuckets)
	}
}
