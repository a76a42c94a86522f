package pipeline

import (
	"os"
	"path/filepath"
	"testing"

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

// TestCorruptSpoolFrameKeepsAccounting damages the middle of a sealed spool segment: the
// pipeline skips the damaged frame, accounts every other record, and goes on with new ones.
func TestCorruptSpoolFrameKeepsAccounting(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	st := newMemStore()
	appendLoad(t, sp, 0, 5000)
	all := readSpool(t, sp)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 2 {
		t.Fatalf("spool has %d segments, want a sealed one and the current one", len(segs))
	}
	p0 := segs[0] // sealed: names sort by number
	data, err := os.ReadFile(p0)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+16; i++ {
		data[i] ^= 0xa5
	}
	if err := os.WriteFile(p0, data, 0o640); err != nil {
		t.Fatal(err)
	}
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
}
