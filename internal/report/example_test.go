package report

import (
	"encoding/hex"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

// exampleDatagram is the worked example of docs/protocol.md.
func exampleDatagram(t *testing.T) []byte {
	b, err := NewBuilder(Key{ID: 1, Secret: []byte("0123456789abcdef0123456789abcdef")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const t0 = 1795000000000000000
	b.Start(0x0102030405060708, 1000, t0)
	for _, r := range []record.Record{
		{Time: t0 - 250e6, Client: netip.MustParseAddr("198.51.100.7"), BytesOut: 1500000, Retransmits: 2,
			MSS: 1448, RTT: 23500, RTTVar: 4200, Duration: 182000, Class: 2, Requests: 1},
		{Time: t0, Client: netip.MustParseAddr("2001:db8::1"), Server: netip.MustParseAddr("192.0.2.80"),
			BytesOut: 9000, PacketsOut: 7, MSS: 1428, RTT: 900, RTTVar: 300, Duration: 1500, Class: 1},
	} {
		if !b.Add(&r) {
			t.Fatal("does not fit")
		}
	}
	return b.Finish()
}

// TestProtocolExample checks the worked example: the builder's bytes equal the golden hex dump,
// which docs/protocol.md quotes, and it decodes back.
func TestProtocolExample(t *testing.T) {
	dg := exampleDatagram(t)
	dump := hex.Dump(dg)
	golden := filepath.Join("testdata", "v2-example.txt")
	if *update {
		os.MkdirAll("testdata", 0o755)
		os.WriteFile(golden, []byte(dump), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if dump != string(want) {
		t.Errorf("example datagram:\n-got\n%s\n+want\n%s", dump, want)
	}
	doc, err := os.ReadFile(filepath.Join(testenv.Root(), "docs", "protocol.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), string(want)) {
		t.Error("docs/protocol.md does not quote testdata/v2-example.txt")
	}
	v, _ := NewVerifier([]Key{{ID: 1, Secret: []byte("0123456789abcdef0123456789abcdef")}})
	h, err := v.Verify(dg)
	if err != nil || h.Count != 2 || h.Seq != 1000 {
		t.Fatalf("Verify(example) = %+v, %v", h, err)
	}
}
