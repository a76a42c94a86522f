package report

import (
	"net/netip"
	"testing"

	"github.com/netledger/netledger/internal/record"
)

// FuzzV2 feeds arbitrary datagrams to the verifier, and arbitrary bodies signed with the key
// (so that the report parser is reached) to the decoder: never a panic, never more reports
// than announced, every accepted report passing Check.
func FuzzV2(f *testing.F) {
	for _, dg := range buildAll(f, testKey, 300, sample(6, 12)) {
		f.Add(dg)
	}
	f.Add([]byte("NL\x02"))
	f.Add([]byte{})
	v, _ := NewVerifier([]Key{testKey})
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(dg []byte) {
			h, err := v.Verify(dg)
			if err != nil {
				return
			}
			it := NewReports(dg, h, source)
			var r record.Record
			n := 0
			for {
				ok, err := it.Next(&r)
				if !ok {
					break
				}
				n++
				if err == nil && Check(&r) != nil {
					t.Fatalf("accepted report fails Check: %+v", r)
				}
				if err == nil && (r.Client.Is4In6() || r.Server.Is4In6()) {
					t.Fatalf("IPv4-mapped address left: %+v", r)
				}
			}
			if n > int(h.Count) {
				t.Fatalf("%d reports from a datagram announcing %d", n, h.Count)
			}
		}
		check(data)
		if len(data) >= HeaderSize {
			body := append([]byte(nil), data...)
			body[0], body[1], body[2] = Magic0, Magic1, VersionV2
			be.PutUint32(body[4:], testKey.ID)
			m := newMAC(testKey)
			m.Write(body)
			check(m.Sum(body))
		}
	})
}

// FuzzV1 feeds arbitrary datagrams to the v1 verifier, and arbitrary 308-byte structs signed
// with the secret to the decoder: never a panic; accepted reports are usable.
func FuzzV1(f *testing.F) {
	f.Add(v1Datagram("SOMESECRET", 1795000000, 1000, 1, 2, 3, 1448, "198.51.100.1"))
	f.Add(v1Datagram("SOMESECRET", 1795000000, 1000, 1, 2, 3, 1448, "2001:db8::1"))
	f.Add(v1Datagram("SOMESECRET", 0, 0, 0, 0, 0, 0, "1.2.3"))
	f.Add([]byte{1, 2, 3})
	v, _ := NewV1("SOMESECRET")
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := v.Verify(data); err == nil {
			var r record.Record
			_ = DecodeV1(data, source, &r)
		}
		if len(data) >= V1Size {
			dg := append([]byte(nil), data[:V1Size]...)
			SignV1(dg, "SOMESECRET")
			if _, err := v.Verify(dg); err != nil {
				t.Fatalf("signed datagram rejected: %v", err)
			}
			var r record.Record
			if err := DecodeV1(dg, netip.MustParseAddr("::ffff:192.0.2.1"), &r); err == nil {
				if Check(&r) != nil || r.Client.Is4In6() || r.Server.Is4In6() {
					t.Fatalf("accepted unusable report %+v", r)
				}
			}
		}
	})
}

func BenchmarkV2VerifyDecode(b *testing.B) {
	dg := buildAll(b, testKey, 0, sample(7, 200))[0]
	v, _ := NewVerifier([]Key{otherKey, testKey})
	var r record.Record
	reports := 0
	b.ReportAllocs()
	b.SetBytes(int64(len(dg)))
	for range b.N {
		h, err := v.Verify(dg)
		if err != nil {
			b.Fatal(err)
		}
		it := NewReports(dg, h, source)
		for ok, _ := it.Next(&r); ok; ok, _ = it.Next(&r) {
			reports++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(reports), "ns/report")
}

func BenchmarkV1VerifyDecode(b *testing.B) {
	dg := v1Datagram("SOMESECRET", 1795000000, 1000, 1, 2, 3, 1448, "198.51.100.1")
	v, _ := NewV1("SOMESECRET")
	var r record.Record
	b.ReportAllocs()
	for range b.N {
		if _, err := v.Verify(dg); err != nil {
			b.Fatal(err)
		}
		if err := DecodeV1(dg, source, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkV2Build(b *testing.B) {
	recs := sample(8, 1000)
	bl, _ := NewBuilder(testKey, 0)
	b.ReportAllocs()
	bl.Start(1, 1, base)
	for i := range b.N {
		r := &recs[i%len(recs)]
		if !bl.Add(r) {
			bl.Finish()
			bl.Start(1, uint64(i), base)
			bl.Add(r)
		}
	}
}
