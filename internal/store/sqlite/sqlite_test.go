package sqlite

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func openTest(t testing.TB, opts ...Option) (*Store, Config) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "netledger.db")
	cfg.Collector = "c1"
	s, err := Open(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, cfg
}

func row(view string, start time.Time, prefix string, bytes uint64) record.Row {
	r := record.Row{View: view, Start: start, Resolution: time.Minute,
		Dims: record.Dims{Router: "r1", Class: "web", ASN: 64500}, Metrics: record.Metrics{Bytes: bytes, Requests: 1, Packets: 2}}
	if prefix != "" {
		r.Dims.Prefix = netip.MustParsePrefix(prefix)
	}
	return r
}

func TestCommitTop(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	b := store.Batch{Consumer: "accounting", Position: store.Position{Segment: 3, Offset: 99}, Rows: []record.Row{
		row("prefix", t0, "203.0.113.0/24", 100),
		row("prefix", t0.Add(time.Minute), "203.0.113.0/24", 50),
		row("prefix", t0, "2001:db8::/32", 120),
		row("prefix", t0, "", 7),
	}}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	p, err := s.Position(ctx, "accounting")
	if err != nil || p != b.Position {
		t.Fatalf("position %v %v", p, err)
	}
	res, err := s.Top(ctx, store.Query{View: "prefix", By: "prefix", From: t0, To: t0.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		key   string
		bytes uint64
	}{{"203.0.113.0/24", 300}, {"2001:db8::/32", 240}, {"unrouted", 14}}
	if len(res) != len(want) {
		t.Fatalf("got %+v", res)
	}
	for i, w := range want {
		if res[i].Key != w.key || res[i].Metrics.Bytes != w.bytes {
			t.Errorf("result %d = %s %d, want %s %d", i, res[i].Key, res[i].Metrics.Bytes, w.key, w.bytes)
		}
	}
	if res[0].Resolution != 24*time.Hour {
		t.Errorf("resolution %v", res[0].Resolution)
	}
}

var _ = errors.New
var _ = rand.New
