package pipeline

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/spool"
)

// readSpool returns every record a reader delivers from the oldest.
func readSpool(t *testing.T, sp *spool.Spool) []record.Record {
	t.Helper()
	r, err := sp.NewReader(spool.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []record.Record
	buf := make([]record.Record, 500)
	for {
		n, _, err := r.Read(buf)
		if err != nil {
			t.Fatalf("Read() error = %v", err)
		}
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

// TestCorruptSpoolFrameKeepsAccounting damages the middle of a spool segment — a sealed one, and
// the synced part of the current one that is still being appended to: the pipeline skips the
// damaged frame, accounts every other record, and goes on with new ones.
func TestCorruptSpoolFrameKeepsAccounting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		segSize int64
		pick    func(segs []string) string
	}{
		{"sealed", 64 << 10, func(segs []string) string { return segs[0] }},
		{"current", 64 << 20, func(segs []string) string { return segs[len(segs)-1] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := spool.DefaultConfig()
			cfg.Dir, cfg.SyncInterval, cfg.SegmentSize = dir, 10*time.Millisecond, tc.segSize
			sp, err := spool.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			st := newMemStore()
			appendLoad(t, sp, 0, 5000)
			all := readSpool(t, sp)
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")) // names sort by number
			if tc.name == "sealed" && len(segs) < 2 {
				t.Fatalf("spool has %d segments, want a sealed one and the current one", len(segs))
			}
			seg := tc.pick(segs)
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			// damage in place: the spool keeps appending to the current segment's open file
			f, err := os.OpenFile(seg, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			mid := len(data) / 2
			bad := make([]byte, 16)
			for i := range bad {
				bad[i] = data[mid+i] ^ 0xa5
			}
			if _, err := f.WriteAt(bad, int64(mid)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			kept := readSpool(t, sp)
			if lost := len(all) - len(kept); lost <= 0 || lost > 2*256 {
				t.Fatalf("damage lost %d of %d records, want one or two frames (256 records each)", lost, len(all))
			}
			var bytes uint64
			for i := range kept {
				bytes += kept[i].BytesOut
			}

			p := newPipeline(t, sp, st, nil)
			stop := start(p)
			waitCommitted(t, st, sp)
			bytes += appendLoad(t, sp, 5000, 1000) // accounting goes on after the damage
			waitCommitted(t, st, sp)
			if err := stop(); err != nil {
				t.Fatalf("Run() = %v, want nil", err)
			}
			checkTotals(t, st, bytes, len(kept)+1000)
		})
	}
}
