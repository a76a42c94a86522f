package tcpinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/netledger/netledger/internal/record"
)

// recBytes lays out r as the BPF iterator writes it: bpf2go's rendering of struct tcp_rec,
// in memory.
func recBytes(r tcpIterTcpRec) []byte {
	return bytes.Clone((*[tcpRecLen]byte)(unsafe.Pointer(&r))[:])
}

// testRec returns a record of a socket with every counter set, and the Socket it decodes to.
func testRec(family uint8, local, remote netip.AddrPort, state uint8) (tcpIterTcpRec, Socket) {
	r := tcpIterTcpRec{Cookie: 0x1122334455667788, BytesAcked: 100_001, BytesReceived: 500, BytesSent: 100_000 + 3*1448,
		BytesRetrans: 3 * 1448, DeliveryRate: 1_000_000, BusyUs: 41_000, CgroupId: 4242, SegsOut: 90, SegsIn: 40,
		TotalRetrans: 3, Mss: 1448, Rtt: 20500, Rttvar: 800, MinRtt: 20100,
		LocalPort: local.Port(), RemotePort: remote.Port(), Family: family, State: state}
	if family == afInet {
		l, rm := local.Addr().As4(), remote.Addr().As4()
		copy(r.Local[:], l[:])
		copy(r.Remote[:], rm[:])
	} else {
		r.Local, r.Remote = local.Addr().As16(), remote.Addr().As16()
	}
	s := Socket{Family: family, State: state, Local: local.Addr(), Remote: remote.Addr(),
		LocalPort: local.Port(), RemotePort: remote.Port(), Cookie: 0x1122334455667788,
		SndMSS: 1448, RTT: 20500, RTTVar: 800, MinRTT: 20100, TotalRetrans: 3, SegsOut: 90, SegsIn: 40,
		BytesAcked: 100_001, BytesReceived: 500, DeliveryRate: 1_000_000, BusyTime: 41_000,
		BytesSent: 100_000 + 3*1448, BytesRetrans: 3 * 1448,
		HaveBytesSent: true, HaveBusyTime: true, HaveMinRTT: true, HaveDeliveryRate: true}
	return r, s
}

// TestRecLayout checks the decoder's offsets against bpf2go's rendering of struct tcp_rec.
func TestRecLayout(t *testing.T) {
	var r tcpIterTcpRec
	if n := unsafe.Sizeof(r); n != tcpRecLen {
		t.Fatalf("struct tcp_rec is %d bytes, the decoder reads %d", n, tcpRecLen)
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"cookie", unsafe.Offsetof(r.Cookie), recCookie},
		{"bytes_acked", unsafe.Offsetof(r.BytesAcked), recBytesAcked},
		{"bytes_received", unsafe.Offsetof(r.BytesReceived), recBytesReceived},
		{"bytes_sent", unsafe.Offsetof(r.BytesSent), recBytesSent},
		{"bytes_retrans", unsafe.Offsetof(r.BytesRetrans), recBytesRetrans},
		{"delivery_rate", unsafe.Offsetof(r.DeliveryRate), recDeliveryRate},
		{"busy_us", unsafe.Offsetof(r.BusyUs), recBusyTime},
		{"cgroup_id", unsafe.Offsetof(r.CgroupId), recCgroupID},
		{"local", unsafe.Offsetof(r.Local), recLocal},
		{"remote", unsafe.Offsetof(r.Remote), recRemote},
		{"segs_out", unsafe.Offsetof(r.SegsOut), recSegsOut},
		{"segs_in", unsafe.Offsetof(r.SegsIn), recSegsIn},
		{"total_retrans", unsafe.Offsetof(r.TotalRetrans), recTotalRetrans},
		{"mss", unsafe.Offsetof(r.Mss), recMSS},
		{"rtt", unsafe.Offsetof(r.Rtt), recRTT},
		{"rttvar", unsafe.Offsetof(r.Rttvar), recRTTVar},
		{"min_rtt", unsafe.Offsetof(r.MinRtt), recMinRTT},
		{"local_port", unsafe.Offsetof(r.LocalPort), recLocalPort},
		{"remote_port", unsafe.Offsetof(r.RemotePort), recRemotePort},
		{"family", unsafe.Offsetof(r.Family), recFamily},
		{"state", unsafe.Offsetof(r.State), recState},
	} {
		if c.got != c.want {
			t.Errorf("%s at %d, the decoder reads %d", c.name, c.got, c.want)
		}
	}
}

func TestDecodeRec(t *testing.T) {
	r4, s4 := testRec(afInet, local4, remote4, stateEstablished)
	r6, s6 := testRec(afInet6, local6, remote6, 8) // CLOSE_WAIT
	mapped := netip.AddrPortFrom(netip.AddrFrom16(local4.Addr().As16()), 443)
	rm, sm := testRec(afInet6, mapped, netip.AddrPortFrom(netip.AddrFrom16(remote4.Addr().As16()), 50123), stateEstablished)
	cg := s4
	cg.CgroupID, cg.HaveCgroup = 4242, true
	rl, sl := testRec(afInet, netip.AddrPortFrom(local4.Addr(), 443), netip.AddrPortFrom(netip.IPv4Unspecified(), 0), stateListen)
	sl.CgroupID, sl.HaveCgroup = 4242, true
	bad := r4
	bad.Family = 1
	for _, c := range []struct {
		name   string
		b      []byte
		cgroup bool
		want   Socket
		err    error
	}{
		{"ipv4", recBytes(r4), false, s4, nil},
		{"ipv6", recBytes(r6), false, s6, nil},
		{"ipv4-mapped ipv6 (unmapped by the tracker)", recBytes(rm), false, sm, nil},
		{"cgroup id", recBytes(r4), true, cg, nil},
		{"listener (cgroup filter)", recBytes(rl), true, sl, nil},
		{"longer buffer", append(recBytes(r4), 1, 2, 3), false, s4, nil},
		{"short", recBytes(r4)[:tcpRecLen-1], false, Socket{}, errRecShort},
		{"unknown family", recBytes(bad), false, Socket{}, errFamily},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got Socket
			err := decodeRec(c.b, &got, c.cgroup)
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if err == nil && got != c.want {
				t.Errorf("decodeRec:\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestReadRecs reads records however the reads split them, and fails on a partial last record
// or a read error.
func TestReadRecs(t *testing.T) {
	var stream []byte
	var want []Socket
	for i := range 50 {
		r, s := testRec(afInet, local4, netip.AddrPortFrom(remote4.Addr(), uint16(40000+i)), stateEstablished)
		stream = append(stream, recBytes(r)...)
		want = append(want, s)
	}
	read := func(r io.Reader, bufSize int) ([]Socket, error) {
		var got []Socket
		fn := func(rec []byte) {
			var s Socket
			if err := decodeRec(rec, &s, false); err != nil {
				t.Fatal(err)
			}
			got = append(got, s)
		}
		return got, readRecs(r, make([]byte, bufSize), new(recStream), fn)
	}
	for _, c := range []struct {
		name string
		r    func() io.Reader
		buf  int
	}{
		{"one read", func() io.Reader { return bytes.NewReader(stream) }, iterReadSize},
		{"one byte a read", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }, iterReadSize},
		{"half reads", func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }, iterReadSize},
		{"buffer of one record", func() io.Reader { return bytes.NewReader(stream) }, tcpRecLen},
		{"buffer of 2.5 records", func() io.Reader { return bytes.NewReader(stream) }, tcpRecLen * 5 / 2},
		{"EOF with data", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) }, iterReadSize},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := read(c.r(), c.buf)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d records, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
				}
			}
		})
	}
	if _, err := read(bytes.NewReader(stream[:len(stream)-1]), iterReadSize); !errors.Is(err, errRecShort) {
		t.Errorf("partial last record: err = %v, want %v", err, errRecShort)
	}
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(stream[:tcpRecLen]), iotest.ErrReader(boom))
	if _, err := read(r, iterReadSize); !errors.Is(err, boom) {
		t.Errorf("read error: err = %v, want %v", err, boom)
	}
}

// TestRecPipe: the overlapped reader calls fn with the same records, in the same order, as
// readRecs, however the reads and its buffers split them; it fails as readRecs does; and a
// failed walk leaves it whole for the next (run with -race: the reading goroutine writes the
// buffers the caller reads).
func TestRecPipe(t *testing.T) {
	var stream []byte
	for i := range 500 {
		r, _ := testRec(afInet6, local6, netip.AddrPortFrom(remote6.Addr(), uint16(40000+i)), stateEstablished)
		r.Cookie = uint64(i + 1)
		stream = append(stream, recBytes(r)...)
	}
	collect := func(read func(fn func([]byte)) error) ([]byte, error) {
		var got []byte
		err := read(func(rec []byte) {
			if len(rec) != tcpRecLen {
				t.Fatalf("record of %d bytes", len(rec))
			}
			got = append(got, rec...)
		})
		return got, err
	}
	want, err := collect(func(fn func([]byte)) error {
		return readRecs(bytes.NewReader(stream), make([]byte, iterReadSize), new(recStream), fn)
	})
	if err != nil || !bytes.Equal(want, stream) {
		t.Fatalf("readRecs: %d bytes, %v", len(want), err)
	}
	readers := []struct {
		name string
		r    func([]byte) io.Reader
	}{
		{"whole reads", func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"one byte a read", func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
		{"half reads", func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
		{"EOF with data", func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
	}
	for _, size := range []int{tcpRecLen, 1000, 3 * seqBufSize, pipeChunkSize} {
		p := newRecPipe(pipeChunks, size)
		var rs recStream
		for _, c := range readers {
			t.Run(fmt.Sprintf("%s/chunk=%d", c.name, size), func(t *testing.T) {
				got, err := collect(func(fn func([]byte)) error { return p.readRecs(c.r(stream), &rs, fn) })
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("got %d bytes, want %d, or other records", len(got), len(want))
				}
			})
		}
		if _, err := collect(func(fn func([]byte)) error {
			return p.readRecs(bytes.NewReader(stream[:len(stream)-1]), &rs, fn)
		}); !errors.Is(err, errRecShort) {
			t.Errorf("chunk %d, partial last record: err = %v, want %v", size, err, errRecShort)
		}
		boom := errors.New("boom")
		r := io.MultiReader(bytes.NewReader(stream[:len(stream)/2+7]), iotest.ErrReader(boom))
		if _, err := collect(func(fn func([]byte)) error { return p.readRecs(r, &rs, fn) }); !errors.Is(err, boom) {
			t.Errorf("chunk %d, read error: err = %v, want %v", size, err, boom)
		}
		// After the failures, a walk gets every buffer back and no record of them.
		got, err := collect(func(fn func([]byte)) error { return p.readRecs(bytes.NewReader(stream), &rs, fn) })
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("chunk %d, after failures: %d bytes, %v", size, len(got), err)
		}
		if len(p.free) != pipeChunks {
			t.Errorf("chunk %d: %d buffers free after the walks, want %d", size, len(p.free), pipeChunks)
		}
	}
}

// TestReadChooser: the first walk overlaps; then each reader is timed once, the faster is used,
// the other tried every exploreEvery walks, and the choice follows when their times cross;
// small walks read serially.
func TestReadChooser(t *testing.T) {
	const big = 100_000
	// Walk times per record of the overlapped and the serial reader, by walk (from 1).
	slowPipe := func(int) (time.Duration, time.Duration) { return 900, 700 }
	fastPipe := func(int) (time.Duration, time.Duration) { return 600, 800 }
	crossing := func(w int) (time.Duration, time.Duration) {
		if w < 20 {
			return 900, 700 // a loaded machine
		}
		return 500, 800 // a core to spare
	}
	for _, c := range []struct {
		name  string
		times func(int) (time.Duration, time.Duration)
		recs  int
		want  string // P: overlapped, S: serial, by walk
	}{
		{"pipe faster", fastPipe, big, "PSPPPPPSPPPPPPPSPPPP"},
		{"serial faster", slowPipe, big, "PSPSSSSPSSSSSSSPSSSS"},
		{"load goes", crossing, big, "PSPSSSSPSSSSSSSPSSSSSSSPPPPPPPPSPPPPPPPS"},
		{"small walks", fastPipe, minPipeRecs - 1, "PSSSSSSSSSSS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var ch readChooser
			var got []byte
			for w := 1; w <= len(c.want); w++ {
				pipe := ch.pipe()
				p, s := c.times(w)
				d, pick := s, byte('S')
				if pipe {
					d, pick = p, 'P'
				}
				got = append(got, pick)
				ch.done(pipe, d*time.Duration(c.recs), c.recs)
			}
			if string(got) != c.want {
				t.Errorf("readers %s, want %s", got, c.want)
			}
		})
	}
}

// TestDecodeRecAllocs: reading and decoding records allocates nothing.
func TestDecodeRecAllocs(t *testing.T) {
	r, _ := testRec(afInet6, local6, remote6, stateEstablished)
	stream := bytes.Repeat(recBytes(r), 100)
	buf := make([]byte, iterReadSize)
	var s Socket
	var rd bytes.Reader
	var rs recStream
	fn := func(rec []byte) {
		if err := decodeRec(rec, &s, true); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		rd.Reset(stream)
		if err := readRecs(&rd, buf, &rs, fn); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations per 100 records, want 0", n)
	}
}

func FuzzDecodeRec(f *testing.F) {
	r4, _ := testRec(afInet, local4, remote4, stateEstablished)
	r6, _ := testRec(afInet6, local6, remote6, stateEstablished)
	f.Add(recBytes(r4), false)
	f.Add(recBytes(r6), true)
	f.Add(recBytes(r4)[:10], false)
	f.Fuzz(func(t *testing.T, b []byte, cgroup bool) {
		var s Socket
		if err := decodeRec(b, &s, cgroup); err != nil {
			return
		}
		if s.Family != afInet && s.Family != afInet6 || s.Local.Is4() != (s.Family == afInet) ||
			s.HaveCgroup != cgroup {
			t.Fatalf("decoded implausible socket %+v", s)
		}
		// What was decoded is what a record of it holds.
		var back tcpIterTcpRec
		back.Cookie, back.BytesAcked, back.BytesReceived = s.Cookie, s.BytesAcked, s.BytesReceived
		back.BytesSent, back.BytesRetrans, back.DeliveryRate, back.BusyUs = s.BytesSent, s.BytesRetrans, s.DeliveryRate, s.BusyTime
		back.SegsOut, back.SegsIn, back.TotalRetrans, back.Mss = s.SegsOut, s.SegsIn, s.TotalRetrans, s.SndMSS
		back.Rtt, back.Rttvar, back.MinRtt = s.RTT, s.RTTVar, s.MinRTT
		back.LocalPort, back.RemotePort, back.Family, back.State = s.LocalPort, s.RemotePort, s.Family, s.State
		if cgroup {
			back.CgroupId = s.CgroupID
		}
		n := 16
		if s.Family == afInet {
			n = 4
		}
		l, r := s.Local.As16(), s.Remote.As16()
		if s.Family == afInet {
			l4, r4 := s.Local.As4(), s.Remote.As4()
			copy(l[:], l4[:])
			copy(r[:], r4[:])
		}
		copy(back.Local[:n], l[:n])
		copy(back.Remote[:n], r[:n])
		want := b[:tcpRecLen]
		got := recBytes(back)
		for i := range got {
			ignored := (i >= recLocal+n && i < recLocal+16) || (i >= recRemote+n && i < recRemote+16) ||
				(!cgroup && i >= recCgroupID && i < recCgroupID+8) || i >= recState+1
			if !ignored && got[i] != want[i] {
				t.Fatalf("byte %d: decoded %+v re-encodes to %x, input %x", i, s, got, want)
			}
		}
	})
}

// BenchmarkIterRecords100k is our share of a BPF dump: 100,000 records of idle sockets (as
// BenchmarkDump100k's after its first dump) read from memory, decoded and accounted by the
// dumper's part under the tracker lock; one op is one dump.
func BenchmarkIterRecords100k(b *testing.B) {
	const n = 100_000
	var stream []byte
	for i := range n {
		r, _ := testRec(afInet, local4, netip.AddrPortFrom(remote4.Addr(), uint16(1024+i%60000)), stateEstablished)
		r.Cookie = uint64(1 + i)
		stream = append(stream, recBytes(r)...)
	}
	s, err := New(Config{Interval: time.Second}, Deps{Sink: func([]record.Record) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	d := newDumper(s, nil)
	d.iter = &sockIter{buf: make([]byte, iterReadSize)}
	p := d.parts[0]
	var rd bytes.Reader
	dump := func() {
		s.mu.Lock()
		s.tr.beginDump()
		d.n = 0
		rd.Reset(stream)
		if err := readRecs(&rd, d.iter.buf, &d.iter.rs, p.recFn); err != nil {
			b.Fatal(err)
		}
		p.account()
		s.tr.endDump(time.Now().UnixNano(), true)
		s.mu.Unlock()
		d.batch = s.flush(d.batch)
	}
	dump() // the first dump sees every socket new
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dump()
	}
	b.StopTimer()
	if d.n != n {
		b.Fatalf("%d sockets accounted, want %d", d.n, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/socket")
}
