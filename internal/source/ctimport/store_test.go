package ctimport

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/export/ctcsv"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
	"github.com/netledger/netledger/internal/store/sqlite"
)

func TestViewRow(t *testing.T) {
	r, err := ctcsv.Parse([]byte("1605374115000000000,tcp,10.32.251.1,10.32.250.2,443,16,13,3220,1884,1,65021,3"))
	if err != nil {
		t.Fatal(err)
	}
	got := ViewRow(&r, 15*time.Second)
	want := record.Row{View: "conntrack", Start: time.Date(2020, 11, 14, 17, 15, 0, 0, time.UTC), Resolution: 15 * time.Second,
		Dims:    record.Dims{Proto: 6, SrcGroup: mustAddr("10.32.251.1"), DstGroup: mustAddr("10.32.250.2"), Port: 443},
		Metrics: record.Metrics{Requests: 1, Bytes: 1884, BytesIn: 3220, Packets: 13, PacketsIn: 16, Duration: 65021000, Conns: 1, Open: 3}}
	if got != want {
		t.Errorf("ViewRow\n got %+v\nwant %+v", got, want)
	}
	// An unaligned timestamp (the original printed its wall clock) falls into the interval
	// holding its last nanosecond.
	r.Time += 4e9
	if got := ViewRow(&r, time.Minute); !got.Start.Equal(time.Date(2020, 11, 14, 17, 15, 0, 0, time.UTC)) || got.Resolution != time.Minute {
		t.Errorf("unaligned: start %v res %v", got.Start, got.Resolution)
	}
	if _, err := NewStoreTarget(nil, 7*time.Second); err == nil {
		t.Error("NewStoreTarget accepted an interval that does not divide an hour")
	}
}

// TestImportIntoSQLite imports files into the embedded store: an original tool's file is
// queryable with its meaning (bytes per source group, connections, open connections), a
// second copy changes nothing, a malformed file is rejected whole — also when read back from
// the database file by a fresh store.
func TestImportIntoSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := sqlite.DefaultConfig()
	cfg.Path = filepath.Join(dir, "netledger.db")
	cfg.Collector = "test"
	db, err := sqlite.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	target, err := NewStoreTarget(db, 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	watch, move := filepath.Join(dir, "new"), filepath.Join(dir, "done")
	im, err := New(Config{Watch: watch, Move: move}, target, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, watch, "traffic_2020-11-14T17_15_15.csv", original)
	write(t, watch, "traffic_2020-11-14T17_15_30.csv", "1605374130000000000,tcp,10.32.5.0,10.32.7.0,22,1,1,60,60,0,0,0\n")
	write(t, watch, "bad.csv", "1605374145000000000,tcp,10.32.5.0,10.32.7.0,22,1,1,60,60,0,0,0\n1605374145000000000,tcp,10.32.5.0,oops,22,1,1,60,60,0,0,0\n")
	res, err := im.Scan(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, r := range res {
		status[r.Name] = r.Status
	}
	if status["bad.csv"] != "rejected" || status["traffic_2020-11-14T17_15_15.csv"] != "imported" || status["traffic_2020-11-14T17_15_30.csv"] != "imported" {
		t.Fatalf("Scan = %+v", res)
	}
	if _, err := os.Stat(filepath.Join(move, "rejected", "bad.csv.error.txt")); err != nil {
		t.Errorf("no rejection report: %v", err)
	}

	q := store.Query{View: View, By: "src-group", Metric: "bytes",
		From: time.Date(2020, 11, 14, 0, 0, 0, 0, time.UTC), To: time.Date(2020, 11, 15, 0, 0, 0, 0, time.UTC)}
	check := func(s *sqlite.Store, when string) {
		t.Helper()
		top, err := s.Top(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]record.Metrics{}
		for _, r := range top {
			got[r.Key] = r.Metrics
		}
		// 10.32.251.1: two tcp/443 rows (3220+300 bytes in, 1884+200 out); 10.32.5.0: the udp/53
		// row and the second file's tcp/22 row; nothing of bad.csv (its first line is valid).
		want := map[string]record.Metrics{
			"10.32.251.1": {Requests: 1, Bytes: 2084, BytesIn: 3520, Packets: 15, PacketsIn: 20, Duration: 65021000, Conns: 1, Open: 6},
			"10.32.5.0":   {Bytes: 540, BytesIn: 300, Packets: 4, PacketsIn: 4},
		}
		if len(got) != len(want) || got["10.32.251.1"] != want["10.32.251.1"] || got["10.32.5.0"] != want["10.32.5.0"] {
			t.Errorf("%s: top by src-group\n got %+v\nwant %+v", when, got, want)
		}
	}
	check(db, "after import")

	// A second copy of a file imported before: a duplicate, the store unchanged.
	write(t, watch, "again.csv", original)
	if res, err := im.Scan(ctx, time.Now()); err != nil || len(res) != 1 || res[0].Status != "duplicate" {
		t.Fatalf("second Scan = %+v, %v", res, err)
	}
	check(db, "after a duplicate")
	if _, err := os.Stat(filepath.Join(move, "again.csv")); err != nil {
		t.Errorf("duplicate not moved: %v", err)
	}

	// The import ids survive a restart: a fresh store on the same file still knows them.
	db.Close()
	db2, err := sqlite.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	target2, _ := NewStoreTarget(db2, 15*time.Second)
	im2, err := New(Config{Watch: watch, Move: move}, target2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, watch, "third.csv", original)
	if res, err := im2.Scan(ctx, time.Now()); err != nil || len(res) != 1 || res[0].Status != "duplicate" {
		t.Fatalf("Scan after restart = %+v, %v", res, err)
	}
	check(db2, "after restart")
}
