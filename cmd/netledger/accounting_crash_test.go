package main

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store/sqlite"
)

// storeTotals returns, per view, the requests and bytes stored at a level (base, hour, day,
// week).
func storeTotals(t *testing.T, path, level string) map[string][2]uint64 {
	t.Helper()
	tot, err := sqlite.ReadTotals(context.Background(), path, level)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]uint64{}
	for view, v := range tot {
		out[view] = [2]uint64{v.Metrics.Requests, v.Metrics.Bytes}
	}
	return out
}

// TestAccountingCrashExactlyOnce kills `netledger serve` with SIGKILL while it receives and
// accounts reports (commits every 20 ms), restarts it, sends more and stops it cleanly: the
// store then holds every report in the spool exactly once — requests = reports, bytes = the
// sum of their ids (each report's bytes are its unique id, so a report counted twice or lost
// changes the sum) — in every view and at every resolution, and run 2's reports are the ones
// it accepted.
func TestAccountingCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin, dir, config := crashSetup(t, "store: {collector: crash-test}\naccounting: {commit_interval: 20ms}\n")
	spoolDir, dbPath := filepath.Join(dir, "spool"), filepath.Join(dir, "netledger.db")

	// Run 1: load; SIGKILL once reports are being committed.
	d := startServe(t, bin, config)
	var next atomic.Uint64
	next.Store(1)
	loadAndKill(t, d, &next, 60*time.Second, "accept 20,000 reports and commit three times", func() bool {
		return d.accepted(t) >= 20_000 && d.metric(t, "netledger_accounting_commits_total ") >= 3
	})
	survivors, _ := readSpool(t, spoolDir, spool.Position{}, 1<<30)
	before := storeTotals(t, dbPath, "base")["router"]
	if before[0] == 0 || before[0] > uint64(len(survivors)) {
		t.Fatalf("after the crash the store holds %d requests of %d reports in the spool", before[0], len(survivors))
	}

	// Run 2: the backlog is accounted from the saved position; more reports; clean stop.
	const more = 10_000
	_, accepted2, all := runMore(t, bin, config, spoolDir, &next, more)
	if len(all) != len(survivors)+accepted2 {
		t.Fatalf("spool holds %d reports, want %d from run 1 + %d accepted in run 2", len(all), len(survivors), accepted2)
	}
	var sum uint64
	for _, id := range all {
		sum += id
	}
	for _, level := range []string{"base", "hour", "day", "week"} {
		got := storeTotals(t, dbPath, level)
		for _, view := range []string{"router", "prefix", "country", "origin"} {
			if g := got[view]; g != [2]uint64{uint64(len(all)), sum} {
				t.Errorf("%s level, view %s: %d requests, %d bytes stored; want %d reports, %d bytes", level, view, g[0], g[1], len(all), sum)
			}
		}
	}
}
