package conntrack

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// syntheticEvents returns the messages of n TCP connections as the kernel sends them:
// NEW, two UPDATEs (ESTABLISHED, LAST_ACK) and DESTROY with counters and timestamps.
func syntheticEvents(n int) [][]byte {
	var out [][]byte
	for i := range n {
		src := netip.AddrFrom4([4]byte{10, 32, byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{10, 33, byte(i % 7), 2})
		f := Flow{Proto: 6, ID: uint32(i*2654435761 + 1), Src: src, Dst: dst, SrcPort: uint16(30000 + i), DstPort: 443}
		f.Type, f.TCPState = EventNew, tcpSynSent
		out = append(out, encode(f))
		f.Type, f.TCPState = EventUpdate, 3
		out = append(out, encode(f))
		f.TCPState = tcpLastAck
		out = append(out, encode(f))
		f.Type, f.TCPState, f.HasCounters = EventDestroy, tcpTimeWait, true
		f.OrigPackets, f.OrigBytes, f.ReplyPackets, f.ReplyBytes = 6, 439, 6, 901
		f.Start, f.Stop = agentStart+1, agentStart+1e6
		out = append(out, encode(f))
	}
	return out
}

// BenchmarkEvents replays synthetic netlink event messages through the decoder and the
// table, as the agent's event loop does (lock excluded). One op is one event.
func BenchmarkEvents(b *testing.B) {
	tb := NewTable(DefaultConfig(), agentStart)
	msgs := syntheticEvents(4096)
	var f Flow
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		DecodeMessage(m, &f)
		tb.Handle(&f, agentStart+1)
		if i%len(msgs) == len(msgs)-1 {
			tb.BeginDump()
			tb.EndDump() // drop the tombstones, as the periodic dump does
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryPerFlow tracks 1 M open connections (NEW events) and reports the heap
// they take per connection.
func BenchmarkMemoryPerFlow(b *testing.B) {
	const n = 1 << 20
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tb := NewTable(DefaultConfig(), agentStart)
		var f Flow
		f.Type, f.Proto, f.DstPort = EventNew, 6, 443
		f.Dst = netip.MustParseAddr("10.33.0.2")
		start := time.Now()
		for i := range n {
			f.ID = uint32(i)
			f.Src = netip.AddrFrom4([4]byte{10, 32, byte(i >> 8), byte(i)})
			f.SrcPort = uint16(i >> 16)
			tb.Handle(&f, agentStart+1)
		}
		el := time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		if tb.Len() != n {
			b.Fatalf("tracking %d flows, want %d", tb.Len(), n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/flow")
		b.ReportMetric(float64(n)/el.Seconds(), "new/s")
		runtime.KeepAlive(tb)
	}
}

func ExampleGroup() {
	saar := [4]byte{255, 239, 255, 0}
	fmt.Println(Group(netip.MustParseAddr("10.48.5.9"), saar, 64))
	// Output: 10.32.5.0
}
