package report

import (
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
)

var (
	testKey  = Key{ID: 7, Secret: []byte("0123456789abcdef0123456789abcdef")}
	otherKey = Key{ID: 8, Secret: []byte("fedcba9876543210fedcba9876543210")}
	source   = netip.MustParseAddr("192.0.2.10")
	base     = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC).UnixNano()
)

// sample returns n reports with a fixed seed: IPv4 and IPv6 clients (some IPv4-mapped),
// servers absent, IPv4 or IPv6, packets present or not.
func sample(seed uint64, n int) []record.Record {
	rng := rand.New(rand.NewPCG(seed, 2))
	recs := make([]record.Record, n)
	for i := range recs {
		r := record.Record{
			Time:        base + int64(rng.IntN(2000))*1e6 - 1e9,
			Class:       uint16(rng.IntN(5)),
			Requests:    uint32(1 + rng.IntN(3)),
			BytesOut:    rng.Uint64N(1 << 32),
			Retransmits: rng.Uint32N(100),
			MSS:         uint32(536 + rng.IntN(9000)),
			RTT:         rng.Uint32N(1_000_000),
			RTTVar:      rng.Uint32N(100_000),
			Duration:    rng.Uint64N(1 << 34),
		}
		switch rng.IntN(3) {
		case 0:
			r.Client = netip.AddrFrom4([4]byte{byte(1 + rng.IntN(200)), byte(rng.Uint32()), byte(rng.Uint32()), byte(1 + rng.IntN(250))})
		case 1:
			r.Client = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(1 + rng.IntN(250))})
		case 2:
			r.Client = netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 198, 13: 51, 14: 100, 15: byte(1 + rng.IntN(250))})
		}
		switch rng.IntN(3) {
		case 1:
			r.Server = netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + rng.IntN(250))})
		case 2:
			r.Server = netip.MustParseAddr("2001:db8:ffff::80")
		}
		if rng.IntN(2) == 0 {
			r.PacketsOut = rng.Uint64N(1 << 20)
		}
		recs[i] = r
	}
	return recs
}

// expect returns what the collector should decode from r sent in a datagram started at t0.
func expect(r record.Record, t0 int64) record.Record {
	r.Time = t0 + (r.Time-t0)/1e6*1e6
	r.Client = record.Unmap(r.Client)
	if !r.Server.IsValid() {
		r.Server = source
	}
	r.Exporter = source
	r.Source = record.SourceReportV2
	r.Proto = 6
	if r.Requests == 0 {
		r.Requests = 1
	}
	return r
}

// buildAll packs recs into datagrams, returning the datagrams (copied) and their starting times.
func buildAll(t testing.TB, key Key, size int, recs []record.Record) [][]byte {
	b, err := NewBuilder(key, size)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	seq := uint64(1000)
	b.Start(42, seq, base)
	for i := range recs {
		if !b.Add(&recs[i]) {
			out = append(out, append([]byte(nil), b.Finish()...))
			seq++
			b.Start(42, seq, base)
			if !b.Add(&recs[i]) {
				t.Fatal("a report does not fit an empty datagram")
			}
		}
	}
	return append(out, append([]byte(nil), b.Finish()...))
}

func decodeAll(t testing.TB, v *Verifier, dgs [][]byte) []record.Record {
	var got []record.Record
	for i, dg := range dgs {
		h, err := v.Verify(dg)
		if err != nil {
			t.Fatalf("datagram %d: Verify() = %v", i, err)
		}
		it := NewReports(dg, h, netip.AddrFrom16(source.As16())) // mapped: unmapped at the door
		var r record.Record
		for {
			ok, err := it.Next(&r)
			if err != nil {
				t.Fatalf("datagram %d: Next() = %v", i, err)
			}
			if !ok {
				break
			}
			got = append(got, r)
		}
	}
	return got
}

func TestV2RoundTrip(t *testing.T) {
	for _, size := range []int{0, 200, 1400, 9000} {
		recs := sample(1, 500)
		dgs := buildAll(t, testKey, size, recs)
		limit := size
		if limit == 0 {
			limit = DefaultPayloadSize
		}
		for i, dg := range dgs {
			if len(dg) > limit {
				t.Fatalf("size %d: datagram %d is %d bytes", size, i, len(dg))
			}
			if i < len(dgs)-1 && len(dg)+MaxReportSize <= limit {
				t.Errorf("size %d: datagram %d is %d bytes: not full", size, i, len(dg))
			}
		}
		v, err := NewVerifier([]Key{otherKey, testKey})
		if err != nil {
			t.Fatal(err)
		}
		got := decodeAll(t, v, dgs)
		if len(got) != len(recs) {
			t.Fatalf("size %d: decoded %d reports, want %d", size, len(got), len(recs))
		}
		for i := range got {
			if want := expect(recs[i], base); got[i] != want {
				t.Fatalf("size %d report %d:\n-got  %+v\n+want %+v", size, i, got[i], want)
			}
		}
	}
}

func TestV2KeyRotation(t *testing.T) {
	recs := sample(2, 3)
	v, _ := NewVerifier([]Key{testKey, otherKey})
	for _, k := range []Key{testKey, otherKey} {
		if got := decodeAll(t, v, buildAll(t, k, 0, recs)); len(got) != 3 {
			t.Errorf("key %d: %d reports", k.ID, len(got))
		}
	}
	only, _ := NewVerifier([]Key{otherKey})
	if _, err := only.Verify(buildAll(t, testKey, 0, recs)[0]); err != UnknownKey {
		t.Errorf("Verify(unknown key) = %v, want unknown_key", err)
	}
	same := Key{ID: testKey.ID, Secret: otherKey.Secret}
	vs, _ := NewVerifier([]Key{same})
	if _, err := vs.Verify(buildAll(t, testKey, 0, recs)[0]); err != BadMAC {
		t.Errorf("Verify(wrong secret) = %v, want bad_mac", err)
	}
	if _, err := NewVerifier([]Key{testKey, testKey}); err == nil {
		t.Error("NewVerifier(duplicate ids) succeeded")
	}
	if _, err := NewVerifier([]Key{{ID: 1, Secret: []byte("short")}}); err == nil {
		t.Error("NewVerifier(short secret) succeeded")
	}
}

func TestV2FlippedBits(t *testing.T) {
	dg := buildAll(t, testKey, 0, sample(3, 4))[0]
	v, _ := NewVerifier([]Key{testKey})
	if _, err := v.Verify(dg); err != nil {
		t.Fatal(err)
	}
	for bit := range len(dg) * 8 {
		c := append([]byte(nil), dg...)
		c[bit/8] ^= 1 << (bit % 8)
		if _, err := v.Verify(c); err == nil {
			t.Fatalf("bit %d flipped: accepted", bit)
		}
	}
	for n := range len(dg) {
		if _, err := v.Verify(dg[:n]); err == nil {
			t.Fatalf("truncated to %d bytes: accepted", n)
		}
	}
}

// signed returns a datagram with the given header fields and body, signed with testKey.
func signed(count uint16, flags3 byte, body []byte) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(body)+MACSize)
	putHeader(b, &Header{KeyID: testKey.ID, SenderID: 1, Seq: 1, Time: base, Count: count})
	b[3] = flags3
	b = append(b, body...)
	bl := &Builder{mac: newMAC(testKey)}
	bl.mac.Write(b)
	return bl.mac.Sum(b)
}

func TestV2BadReports(t *testing.T) {
	good := sample(4, 1)[0]
	good.Client = netip.MustParseAddr("198.51.100.7")
	good.Server, good.PacketsOut = netip.Addr{}, 0
	one := appendReport(nil, &good, base)
	mod := func(f func(r *record.Record)) []byte {
		r := good
		f(&r)
		return appendReport(nil, &r, base)
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		dg       []byte
		verify   Reason
		accepted int
		rejected []Reason
	}{
		{"valid", signed(2, 0, cat(one, one)), OK, 2, nil},
		{"count too high", signed(3, 0, cat(one, one)), OK, 2, []Reason{Truncated}},
		{"count too low", signed(1, 0, cat(one, one)), OK, 1, []Reason{Malformed}},
		{"count zero", signed(0, 0, cat(one)), Malformed, 0, nil},
		{"header flags", signed(1, 1, one), Malformed, 0, nil},
		{"unknown report flag", signed(2, 0, cat(one, append([]byte{0x80}, one[1:]...))), OK, 1, []Reason{Malformed}},
		{"unspecified client", signed(3, 0, cat(one, mod(func(r *record.Record) { r.Client = netip.IPv4Unspecified() }), one)), OK, 2, []Reason{BadAddress}},
		{"multicast server", signed(2, 0, cat(mod(func(r *record.Record) { r.Server = netip.MustParseAddr("ff02::1") }), one)), OK, 1, []Reason{BadAddress}},
		{"absurd bytes", signed(2, 0, cat(mod(func(r *record.Record) { r.BytesOut = 1 << 50 }), one)), OK, 1, []Reason{Absurd}},
		{"absurd rtt", signed(2, 0, cat(one, mod(func(r *record.Record) { r.RTT = 1 << 31 }))), OK, 1, []Reason{Absurd}},
		{"absurd mss", signed(1, 0, mod(func(r *record.Record) { r.MSS = 1 << 20 })), OK, 0, []Reason{Absurd}},
		{"report time far off", signed(1, 0, mod(func(r *record.Record) { r.Time = base - 2*3600e9 })), OK, 0, []Reason{Absurd}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := NewVerifier([]Key{testKey})
			h, err := v.Verify(tc.dg)
			if ReasonOf(err) != tc.verify {
				t.Fatalf("Verify() = %v, want %v", err, tc.verify)
			}
			if err != nil {
				return
			}
			it := NewReports(tc.dg, h, source)
			var r record.Record
			accepted := 0
			var rejected []Reason
			for {
				ok, err := it.Next(&r)
				if err != nil {
					rejected = append(rejected, ReasonOf(err))
				} else if ok {
					accepted++
				}
				if !ok {
					break
				}
			}
			if accepted != tc.accepted || len(rejected) != len(tc.rejected) || (len(rejected) > 0 && rejected[0] != tc.rejected[0]) {
				t.Errorf("accepted %d rejected %v; want %d %v", accepted, rejected, tc.accepted, tc.rejected)
			}
		})
	}
}

// v1Datagram builds a trafstat v1 datagram byte by byte from the layout in DESIGN.md, without
// the package's encoder.
func v1Datagram(secret string, t uint64, bytes uint64, typ, secs, retrans, mss uint32, addr string) []byte {
	var b [308]byte
	binary.LittleEndian.PutUint64(b[0:8], t)
	binary.LittleEndian.PutUint64(b[8:16], bytes)
	binary.LittleEndian.PutUint32(b[16:20], typ)
	binary.LittleEndian.PutUint32(b[20:24], secs)
	binary.LittleEndian.PutUint32(b[24:28], retrans)
	binary.LittleEndian.PutUint32(b[28:32], mss)
	for i := 0; i < len(addr); i++ {
		b[32+i] = addr[i]
	}
	for i := 0; i < len(secret); i++ {
		b[288+i] = secret[i]
	}
	sum := sha1.Sum(b[:])
	for i := range 20 {
		b[288+i] = sum[i]
	}
	return b[:]
}

func TestV1ByteByByte(t *testing.T) {
	v, err := NewV1("SOMESECRET")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr string
		want netip.Addr
	}{
		{"198.51.100.23", netip.MustParseAddr("198.51.100.23")},
		{"2001:db8::1", netip.MustParseAddr("2001:db8::1")},
		{"::ffff:198.51.100.24", netip.MustParseAddr("198.51.100.24")},
	} {
		dg := v1Datagram("SOMESECRET", 1795000000, 123456, 2, 3, 4, 1448, tc.addr)
		h, err := v.Verify(dg)
		if err != nil {
			t.Fatalf("%s: Verify() = %v", tc.addr, err)
		}
		if h.Time != 1795000000 {
			t.Errorf("%s: time = %d", tc.addr, h.Time)
		}
		var r record.Record
		if err := DecodeV1(dg, source, &r); err != nil {
			t.Fatalf("%s: DecodeV1() = %v", tc.addr, err)
		}
		want := record.Record{Time: 1795000000e9, Client: tc.want, Server: source, Exporter: source,
			Proto: 6, Source: record.SourceReportV1, Class: 2, Requests: 1, BytesOut: 123456,
			Retransmits: 4, MSS: 1448, Duration: 3e6}
		if r != want {
			t.Errorf("%s:\n-got  %+v\n+want %+v", tc.addr, r, want)
		}
		// The package's own encoder produces the same bytes.
		enc := make([]byte, V1Size)
		EncodeV1(enc, &want, "SOMESECRET")
		if tc.addr != "::ffff:198.51.100.24" && string(enc) != string(dg) {
			t.Errorf("%s: EncodeV1 differs from the documented layout", tc.addr)
		}
	}
}

func TestV1Rejects(t *testing.T) {
	v, _ := NewV1("SOMESECRET")
	dg := v1Datagram("SOMESECRET", 1795000000, 1, 0, 0, 0, 1448, "198.51.100.1")
	for bit := range len(dg) * 8 {
		c := append([]byte(nil), dg...)
		c[bit/8] ^= 1 << (bit % 8)
		if _, err := v.Verify(c); err != BadMAC {
			t.Fatalf("bit %d flipped: Verify() = %v, want bad_mac", bit, err)
		}
	}
	if _, err := v.Verify(dg[:307]); err != Truncated {
		t.Errorf("307 bytes: %v", err)
	}
	if _, err := v.Verify(append(dg, 0)); err != Oversized {
		t.Errorf("309 bytes: %v", err)
	}
	if _, err := v.Verify(v1Datagram("OTHER", 1795000000, 1, 0, 0, 0, 1448, "198.51.100.1")); err != BadMAC {
		t.Errorf("other secret: %v", err)
	}
	long := string(make([]byte, 256))
	for _, tc := range []struct {
		name string
		dg   []byte
		want Reason
	}{
		{"not an address", v1Datagram("S", 1, 1, 0, 0, 0, 0, "example.com"), BadAddress},
		{"empty address", v1Datagram("S", 1, 1, 0, 0, 0, 0, ""), BadAddress},
		{"zone", v1Datagram("S", 1, 1, 0, 0, 0, 0, "fe80::1%eth0"), BadAddress},
		{"unspecified", v1Datagram("S", 1, 1, 0, 0, 0, 0, "0.0.0.0"), BadAddress},
		{"no NUL", func() []byte {
			d := v1Datagram("S", 1, 1, 0, 0, 0, 0, "")
			copy(d[32:288], []byte(long))
			for i := 32; i < 288; i++ {
				d[i] = '1'
			}
			return d
		}(), Malformed},
		{"type beyond u16", v1Datagram("S", 1, 1, 70000, 0, 0, 0, "198.51.100.1"), Absurd},
		{"absurd bytes", v1Datagram("S", 1, 1<<60, 0, 0, 0, 0, "198.51.100.1"), Absurd},
	} {
		var r record.Record
		if err := DecodeV1(tc.dg, source, &r); ReasonOf(err) != tc.want {
			t.Errorf("%s: DecodeV1() = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := NewV1("this secret is longer than twenty bytes"); err == nil {
		t.Error("NewV1(long secret) succeeded")
	}
}

func TestReplayFilter(t *testing.T) {
	type step struct {
		sender, seq uint64
		want        bool
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{1, 10, true}, {1, 11, true}, {1, 12, true}}},
		{"exact replay", []step{{1, 10, true}, {1, 10, false}}},
		{"out of order within window", []step{{1, 10, true}, {1, 20, true}, {1, 15, true}, {1, 15, false}, {1, 10, false}, {1, 11, true}}},
		{"below window", []step{{1, 100, true}, {1, 100 - ReplayWindow + 1, true}, {1, 100 - ReplayWindow, false}}},
		{"big jump clears", []step{{1, 10, true}, {1, 10 + 1000, true}, {1, 10, false}, {1, 1009, true}}},
		{"senders independent", []step{{1, 10, true}, {2, 10, true}, {2, 10, false}, {1, 11, true}}},
		{"restart with time-derived sequence", []step{{1, 1_700_000_000_000_000_000, true}, {1, 1_700_000_050_000_000_000, true}, {1, 1_700_000_000_000_000_001, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := NewReplayFilter()
			for i, s := range tc.steps {
				if got := f.Accept(s.sender, s.seq, 0); got != s.want {
					t.Fatalf("step %d: Accept(%d, %d) = %v, want %v", i, s.sender, s.seq, got, s.want)
				}
			}
		})
	}
	f := NewReplayFilter()
	f.Accept(1, 5, 100)
	f.Accept(2, 5, 200)
	if n := f.Expire(250, 100); n != 1 {
		t.Errorf("Expire() kept %d senders, want 1", n)
	}
	if !f.Accept(1, 5, 300) {
		t.Error("expired sender's state still present")
	}
}

func TestDecodeAllocs(t *testing.T) {
	dg := buildAll(t, testKey, 0, sample(5, 30))[0]
	v, _ := NewVerifier([]Key{testKey})
	v1v, _ := NewV1("SOMESECRET")
	d1 := v1Datagram("SOMESECRET", 1795000000, 1, 0, 0, 0, 1448, "2001:db8::77")
	var r record.Record
	allocs := testing.AllocsPerRun(100, func() {
		h, err := v.Verify(dg)
		if err != nil {
			t.Fatal(err)
		}
		it := NewReports(dg, h, source)
		for ok, _ := it.Next(&r); ok; ok, _ = it.Next(&r) {
		}
		if _, err := v1v.Verify(d1); err != nil {
			t.Fatal(err)
		}
		if err := DecodeV1(d1, source, &r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("verify+decode allocates %v times", allocs)
	}
}

func TestReasonOf(t *testing.T) {
	if ReasonOf(nil) != OK || ReasonOf(Stale) != Stale || ReasonOf(errors.New("x")) != Malformed {
		t.Error("ReasonOf mismatch")
	}
	if Replay.String() != "replay" || Reason(200).String() != "reason200" {
		t.Error("Reason.String mismatch")
	}
}
