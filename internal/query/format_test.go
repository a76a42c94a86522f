package query

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-got +want):\n-%s\n+%s", name, got, want)
	}
}

var from = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func topResults() []store.Result {
	return []store.Result{
		{Key: "AS4200000001", Resolution: time.Hour, Metrics: record.Metrics{Requests: 1234567, Bytes: 98765432109, Packets: 68208000, Retransmits: 341040, RTTSum: 1234567 * 23400, RTTCount: 1234567}},
		{Key: "AS64496", Resolution: time.Hour, Metrics: record.Metrics{Requests: 5000, Bytes: 1500000000, Packets: 1035912, Retransmits: 0, RTTSum: 0, RTTCount: 0}},
		{Key: "AS0", Resolution: time.Hour, Metrics: record.Metrics{Requests: 12, Bytes: 999, Packets: 12, Retransmits: 3, RTTSum: 12 * 180500, RTTCount: 12}},
	}
}

func names(asn uint32) string {
	return map[uint32]string{4200000001: "Demo Telecom US-1 with a rather long name", 64496: "Demo Transit A"}[asn]
}

func TestTopGolden(t *testing.T) {
	q := store.Query{By: "peer", Metric: "bytes", From: from, To: from.Add(24 * time.Hour)}
	for _, format := range Formats {
		var b bytes.Buffer
		if err := Top(&b, Output{Query: q, Names: names, Format: format}, topResults()); err != nil {
			t.Fatal(err)
		}
		golden(t, "top."+format, b.Bytes())
	}
}

func TestSeriesGolden(t *testing.T) {
	q := store.Query{By: "country", From: from, To: from.Add(2 * time.Hour), Step: time.Hour}
	res := []store.Result{
		{Key: "DE", Start: from, Resolution: time.Hour, Metrics: record.Metrics{Requests: 10, Bytes: 3600000000, Packets: 2486188, Retransmits: 24862, RTTSum: 10 * 15000, RTTCount: 10}},
		{Key: "US", Start: from, Resolution: time.Hour, Metrics: record.Metrics{Requests: 4, Bytes: 1200000000, Packets: 828730, RTTSum: 4 * 95000, RTTCount: 4}},
		{Key: "DE", Start: from.Add(time.Hour), Resolution: time.Hour, Metrics: record.Metrics{Requests: 1, Bytes: 450, Packets: 1}},
	}
	for _, format := range Formats {
		var b bytes.Buffer
		if err := Series(&b, Output{Query: q, Names: names, Format: format}, res); err != nil {
			t.Fatal(err)
		}
		golden(t, "series."+format, b.Bytes())
	}
}

func TestEmpty(t *testing.T) {
	q := store.Query{By: "prefix", From: from, To: from.Add(time.Hour)}
	for format, want := range map[string]string{"json": "[]\n", "csv": "key,name,requests,bytes,bits_per_second,share,packets,retransmits,retransmit_rate,rtt_ms\n"} {
		var b bytes.Buffer
		if err := Top(&b, Output{Query: q, Format: format}, nil); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Errorf("%s: got %q, want %q", format, b.String(), want)
		}
	}
	var b bytes.Buffer
	if err := Top(&b, Output{Query: q, Format: "xml"}, nil); err == nil {
		t.Error("unknown format accepted")
	}
}

func TestUnits(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Bytes(0), "0 B"}, {Bytes(999), "999 B"}, {Bytes(1000), "1.00 kB"}, {Bytes(1500), "1.50 kB"},
		{Bytes(12_345_678), "12.3 MB"}, {Bytes(999_600_000), "1.00 GB"}, {Bytes(456_000_000_000), "456 GB"},
		{Bits(800), "800 bit/s"}, {Bits(12_500), "12.5 kbit/s"}, {Bits(3.2e9), "3.20 Gbit/s"},
		{Count(999), "999"}, {Count(1200), "1.20k"}, {Count(35_000_000), "35.0M"},
		{Percent(0), "0 %"}, {Percent(0.0123), "1.23 %"}, {Percent(0.5), "50.0 %"}, {Percent(1), "100.0 %"},
		{Millis(0), "-"}, {Millis(23.44), "23.4 ms"}, {Millis(180.5), "180 ms"},
		{Truncate("abcdef", 4), "abc…"}, {Truncate("abc", 4), "abc"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestRange(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 20, 30, 0, time.UTC)
	for _, c := range []struct {
		since, from, to string
		want0, want1    time.Time
		bad             bool
	}{
		{since: "24h", want0: time.Date(2026, 11, 22, 10, 20, 0, 0, time.UTC), want1: time.Date(2026, 11, 23, 10, 21, 0, 0, time.UTC)},
		{since: "7d", want0: time.Date(2026, 11, 16, 10, 20, 0, 0, time.UTC), want1: time.Date(2026, 11, 23, 10, 21, 0, 0, time.UTC)},
		{from: "2026-11-20", to: "2026-11-21 12:00", want0: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), want1: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)},
		{from: "2026-11-23T09:00:00+01:00", want0: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), want1: time.Date(2026, 11, 23, 10, 21, 0, 0, time.UTC)},
		{from: "2h", to: "1h", want0: time.Date(2026, 11, 23, 8, 20, 0, 0, time.UTC), want1: time.Date(2026, 11, 23, 9, 21, 0, 0, time.UTC)},
		{from: "1795000000", to: "1795003600", want0: time.Unix(1795000000, 0).UTC().Truncate(time.Minute), want1: time.Unix(1795003600, 0).UTC().Truncate(time.Minute).Add(time.Minute)},
		{since: "0s", bad: true},
		{since: "x", bad: true},
		{from: "2026-11-21", to: "2026-11-20", bad: true},
		{from: "yesterday", bad: true},
	} {
		a, b, err := Range(c.since, c.from, c.to, now)
		if c.bad {
			if err == nil {
				t.Errorf("%+v: no error", c)
			}
			continue
		}
		if err != nil || !a.Equal(c.want0) || !b.Equal(c.want1) {
			t.Errorf("%+v: got %s %s %v", c, a, b, err)
		}
	}
}

func TestCheckQuery(t *testing.T) {
	ok := store.Query{By: "prefix", Metric: "rtt", From: from, To: from.Add(time.Minute)}
	if err := CheckQuery(ok); err != nil {
		t.Error(err)
	}
	for _, q := range []store.Query{
		{By: "city", From: from, To: from.Add(time.Minute)},
		{By: "prefix", Metric: "joy", From: from, To: from.Add(time.Minute)},
		{By: "prefix", From: from, To: from},
	} {
		if err := CheckQuery(q); err == nil {
			t.Errorf("%+v accepted", q)
		}
	}
}

func TestSeriesInferredStep(t *testing.T) {
	q := store.Query{By: "router", From: from, To: from.Add(3 * time.Hour)}
	res := []store.Result{
		{Key: "a", Start: from, Resolution: time.Minute, Metrics: record.Metrics{Bytes: 450}},
		{Key: "b", Start: from, Resolution: time.Minute, Metrics: record.Metrics{Bytes: 450}},
		{Key: "a", Start: from.Add(2 * time.Hour), Resolution: time.Hour, Metrics: record.Metrics{Bytes: 900}},
		{Key: "a", Start: from.Add(3 * time.Hour), Resolution: time.Hour, Metrics: record.Metrics{Bytes: 900}},
	}
	var b bytes.Buffer
	if err := Series(&b, Output{Query: q, Format: "csv"}, res); err != nil {
		t.Fatal(err)
	}
	// one-hour buckets: 900 bytes → 2 bit/s
	if !bytes.Contains(b.Bytes(), []byte("2026-11-22T12:00:00Z,a,,0,900,2,")) {
		t.Errorf("got\n%s", b.String())
	}
}
