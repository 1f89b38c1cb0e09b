package main

import (
	"math"
	"math/bits"
)

// The latency histogram of bench/loadgen/histogram.ts, bucket for bucket, so
// the orchestrator merges this worker's counts with the Node workers'
// unchanged: whole microseconds from 0 to 60 s, one bucket per value below
// 256 µs, 128 buckets per power of two above.

const (
	subBits        = 8
	subCount       = 1 << subBits
	half           = subCount >> 1
	histogramMaxUs = 60_000_000
)

// bucketOf is the bucket index of a whole, clamped microsecond value.
func bucketOf(us int64) int {
	if us < subCount {
		return int(us)
	}
	top := 63 - bits.LeadingZeros64(uint64(us))
	shift := top - (subBits - 1)
	return subCount + (shift-1)*half + int(us>>uint(shift)) - half
}

// histogramBuckets is the number of buckets (HISTOGRAM_BUCKETS on the Node side).
var histogramBuckets = bucketOf(histogramMaxUs) + 1

// histogram counts latencies without allocating per value.
type histogram struct {
	counts []int64
	maxUs  int64
}

func newHistogram() *histogram {
	return &histogram{counts: make([]int64, histogramBuckets)}
}

// record adds a latency in microseconds, rounded and clamped to 0..60 s.
func (h *histogram) record(us float64) {
	if us != us { // NaN: Math.round(NaN) lands in no bucket on the Node side either
		return
	}
	v := int64(math.Floor(us + 0.5))
	if v < 0 {
		v = 0
	} else if v > histogramMaxUs {
		v = histogramMaxUs
	}
	h.counts[bucketOf(v)]++
	if v > h.maxUs {
		h.maxUs = v
	}
}
