package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/store"
)

// TestCheckpointer commits more than checkpointBytes. With the checkpointer stopped, the
// commits leave every frame in the WAL (the writer does not checkpoint); with it running, it
// copies the WAL into the database file after the write that takes it over (counted), and Close
// waits for it. Both stores hold the same rows after a reopen.
func TestCheckpointer(t *testing.T) {
	ctx := context.Background()
	rows := freshHourRows() // ≈ 7 MB of blobs: one kick
	for _, running := range []bool{false, true} {
		s, cfg := openTest(t)
		var auto int
		if err := s.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil || auto != 0 {
			t.Fatalf("writer's wal_autocheckpoint %d, %v", auto, err)
		}
		waitCheckpoints(t, s, 1) // the one at Open
		if !running {
			s.wmu.Lock()
			s.stopCheckpointer()
			s.wmu.Unlock()
		}
		frames := testutil.ToFloat64(s.metrics.checkpointFrames)
		if err := s.Commit(ctx, store.Batch{Consumer: "accounting", Position: store.Position{Segment: 1}, Rows: rows}); err != nil {
			t.Fatal(err)
		}
		if running {
			waitCheckpoints(t, s, 2)
			if copied := testutil.ToFloat64(s.metrics.checkpointFrames) - frames; copied < 300 {
				t.Fatalf("the checkpointer copied %v frames of a 7 MB commit", copied)
			}
		} else {
			db, err := sql.Open("sqlite", dsn(cfg, false))
			if err != nil {
				t.Fatal(err)
			}
			var busy, log, copied int
			err = db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied)
			db.Close()
			if err != nil || log < 300 || copied != log {
				t.Fatalf("after the commit the WAL held %d frames (%d copied now, %v): want the whole commit", log, copied, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		totals, err := ReadTotals(ctx, cfg.Path, "hour")
		if err != nil || totals["prefix"].Points != len(rows) {
			t.Fatalf("running %v: after a reopen %v, %v", running, totals, err)
		}
	}
}

// waitCheckpoints waits until the checkpointer has run n times; the deadline only bounds a
// broken checkpointer (copying a 7 MB WAL on a loaded CI machine's disk can take seconds).
func waitCheckpoints(t *testing.T, s *Store, n float64) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if testutil.ToFloat64(s.metrics.checkpoints.WithLabelValues("ok")) >= n {
			return
		}
	}
	t.Fatalf("%v checkpoints, want %v", testutil.ToFloat64(s.metrics.checkpoints.WithLabelValues("ok")), n)
}

// TestLargeCommitSpills commits an hour of a fresh store (≈ 7 MB of blobs) that fails at its
// end (the fault hook): the writer's small page cache spilled its pages to the WAL during the
// transaction (the WAL file grew by megabytes), yet neither the rows nor the position are seen,
// also after a reopen; the same commit then succeeds.
func TestLargeCommitSpills(t *testing.T) {
	ctx := context.Background()
	rows := freshHourRows()
	s, cfg := openTest(t, WithCommitFault(func(store.Batch) error { return errors.New("crash") }))
	waitCheckpoints(t, s, 1) // the one at Open: the WAL stays as long as it is
	walSize := func() int64 {
		fi, err := os.Stat(cfg.Path + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := walSize()
	b := store.Batch{Consumer: "accounting", Position: store.Position{Segment: 7, Offset: 9}, Rows: rows}
	if err := s.Commit(ctx, b); err == nil {
		t.Fatal("the faulty commit succeeded")
	}
	if grew := walSize() - before; grew < 2<<20 {
		t.Fatalf("the failed commit wrote %d bytes to the WAL: want its spilled pages (megabytes)", grew)
	}
	empty := func(s *Store) {
		t.Helper()
		n := tableCounts(t, s)
		p, err := s.Position(ctx, "accounting")
		if err != nil || n["packs"] != 0 || n["blobs"] != 0 || n["series packs"] != 0 || p != (store.Position{}) {
			t.Fatalf("after the failed commit: %v, position %v, %v", n, p, err)
		}
	}
	empty(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	empty(s)
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Position(ctx, "accounting"); err != nil || p != b.Position {
		t.Fatalf("position %v, %v after the commit", p, err)
	}
	totals, err := ReadTotals(ctx, cfg.Path, "hour")
	if err != nil || totals["prefix"].Points != len(rows) {
		t.Fatalf("after the commit %v, %v", totals, err)
	}
}
