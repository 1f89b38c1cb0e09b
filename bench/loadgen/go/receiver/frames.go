package main

import (
	"encoding/binary"
	"math"
)

// WebSocket opcodes the receiver acts on (RFC 6455 §5.2).
const (
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// stampBytes is BINARY_STAMP_BYTES of bench/loadgen/client-frames.ts: a
// binary payload starts with the scheduled send time (float64 LE, epoch ms)
// and a uint32 sequence number; shorter payloads carry no stamp.
const stampBytes = 12

// frameReader follows one connection's server-to-client frames across reads.
// It looks at frame headers and at most the first 125 payload bytes (the
// stamp of a data frame, the body of a control frame) and skips the rest.
type frameReader struct {
	header     [14]byte
	headerLen  int
	headerNeed int
	opcode     byte
	masked     bool
	mask       [4]byte
	length     uint64
	remaining  uint64
	prefix     [125]byte
	captured   int
	want       int
}

// feed consumes b, calling sink.onFrame once per frame completed in it; a
// whole stamped binary frame inside b is counted without that call.
func (r *frameReader) feed(b []byte, sink *conn) {
	w := theWorker
	counted := !sink.slow
	i := 0
	n := len(b)
	for i < n {
		if r.remaining == 0 && r.headerLen == 0 && n-i >= 2 {
			// Fast path: an unmasked frame with a 7- or 16-bit length lying whole in b.
			b1 := b[i+1]
			if b1 < 126 || (b1 == 126 && n-i >= 4) {
				size := 2
				length := int(b1)
				if b1 == 126 {
					size = 4
					length = int(b[i+2])<<8 | int(b[i+3])
				}
				if n-i >= size+length {
					opcode := b[i] & 0x0f
					if opcode == opBinary && length >= stampBytes && counted {
						from := i + size
						i = from + length
						ts := readStamp(b[from:])
						if ts >= w.winStart && ts < w.winEnd {
							w.delivered++
							w.hist.record((w.nowMs - ts) * 1000)
						}
						continue
					}
					from := i + size
					i = from + length
					sink.onFrame(opcode, b[from:from+keep(opcode, length)])
					continue
				}
			}
		}
		if r.remaining == 0 && r.want == 0 {
			r.header[r.headerLen] = b[i]
			r.headerLen++
			i++
			if r.headerLen == 2 {
				r.headerNeed = 2
				switch r.header[1] & 0x7f {
				case 126:
					r.headerNeed += 2
				case 127:
					r.headerNeed += 8
				}
				if r.header[1]&0x80 != 0 {
					r.headerNeed += 4
				}
			}
			if r.headerLen >= 2 && r.headerLen == r.headerNeed {
				r.startPayload(sink)
			}
			continue
		}
		// inside a payload: keep what is wanted, skip the rest
		if r.captured < r.want {
			k := r.want - r.captured
			if k > n-i {
				k = n - i
			}
			copy(r.prefix[r.captured:], b[i:i+k])
			r.captured += k
			r.remaining -= uint64(k)
			i += k
		}
		skip := r.remaining
		if skip > uint64(n-i) {
			skip = uint64(n - i)
		}
		r.remaining -= skip
		i += int(skip)
		if r.remaining == 0 {
			r.endFrame(sink)
		}
	}
}

// keep is how many payload bytes of a frame are looked at: the stamp of a
// data frame, the whole body (≤ 125 bytes) of a control frame.
func keep(opcode byte, length int) int {
	want := stampBytes
	if opcode >= 8 {
		want = 125
	}
	if length < want {
		return length
	}
	return want
}

func (r *frameReader) startPayload(sink *conn) {
	h := r.header[:r.headerLen]
	r.opcode = h[0] & 0x0f
	len7 := h[1] & 0x7f
	at := 2
	switch len7 {
	case 126:
		r.length = uint64(binary.BigEndian.Uint16(h[2:4]))
		at = 4
	case 127:
		r.length = binary.BigEndian.Uint64(h[2:10])
		at = 10
	default:
		r.length = uint64(len7)
	}
	r.masked = h[1]&0x80 != 0
	if r.masked {
		copy(r.mask[:], h[at:at+4])
	}
	r.remaining = r.length
	r.captured = 0
	if r.length > math.MaxInt32 {
		r.want = keep(r.opcode, math.MaxInt32)
	} else {
		r.want = keep(r.opcode, int(r.length))
	}
	r.headerLen = 0
	if r.length == 0 {
		r.endFrame(sink)
	}
}

func (r *frameReader) endFrame(sink *conn) {
	p := r.prefix[:r.captured]
	if r.masked {
		for k := range p {
			p[k] ^= r.mask[k&3]
		}
	}
	r.want = 0
	r.captured = 0
	sink.onFrame(r.opcode, p)
}

// readStamp is the scheduled send time (epoch ms) at the start of a stamped payload.
func readStamp(p []byte) float64 {
	return math.Float64frombits(binary.LittleEndian.Uint64(p[:8]))
}
