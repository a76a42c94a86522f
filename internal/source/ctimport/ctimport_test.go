package ctimport

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/export/ctcsv"
)

// memTarget is a store stand-in with the store's contract: rows are added to the rows under
// the same key, and the file id is committed with them (here: under one mutex-free call).
type memTarget struct {
	ids  map[string]bool
	rows map[ctcsv.Key]map[int64]ctcsv.Row
}

func newMem() *memTarget {
	return &memTarget{ids: map[string]bool{}, rows: map[ctcsv.Key]map[int64]ctcsv.Row{}}
}

func (m *memTarget) Imported(_ context.Context, id string) (bool, error) { return m.ids[id], nil }

func (m *memTarget) Import(_ context.Context, id string, rows []ctcsv.Row) error {
	for _, r := range rows {
		k := r.Key()
		if m.rows[k] == nil {
			m.rows[k] = map[int64]ctcsv.Row{}
		}
		cur := m.rows[k][r.Time]
		cur.Time, cur.Proto, cur.Src, cur.Dst, cur.Port = r.Time, r.Proto, r.Src, r.Dst, r.Port
		cur.SrcPackets += r.SrcPackets
		cur.DstPackets += r.DstPackets
		cur.SrcBytes += r.SrcBytes
		cur.DstBytes += r.DstBytes
		cur.Connections += r.Connections
		cur.ConnTimeMs += r.ConnTimeMs
		cur.Open += r.Open
		m.rows[k][r.Time] = cur
	}
	m.ids[id] = true
	return nil
}

func (m *memTarget) count() (n int) {
	for _, byTime := range m.rows {
		n += len(byTime)
	}
	return n
}

// A file as the original tool wrote it (its Telegraf sample line among them).
const original = `1605374115000000000,tcp,10.32.251.1,10.32.250.2,443,16,13,3220,1884,1,65021,3
1605374115000000000,udp,10.32.5.0,10.32.7.0,53,3,3,240,480,0,0,0
1605374130000000000,tcp,10.32.251.1,10.32.250.2,443,4,2,300,200,0,0,3
`

func setup(t *testing.T) (*Importer, *memTarget, string, string) {
	t.Helper()
	dir := t.TempDir()
	watch, move := filepath.Join(dir, "new"), filepath.Join(dir, "processed")
	mem := newMem()
	im, err := New(Config{Watch: watch, Move: move}, mem, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return im, mem, watch, move
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImportOriginalFileTwice(t *testing.T) {
	im, mem, watch, move := setup(t)
	ctx := context.Background()
	// present before the importer runs (arrived while it was down)
	write(t, watch, "traffic_2020-11-14T17_15_15.csv", original)
	res, err := im.Scan(ctx, time.Now())
	if err != nil || len(res) != 1 || res[0].Status != "imported" || res[0].Rows != 3 {
		t.Fatalf("Scan = %+v, %v", res, err)
	}
	// same meaning: every line is in the target with its values
	for _, line := range strings.Split(strings.TrimSpace(original), "\n") {
		want, _ := ctcsv.Parse([]byte(line))
		if got := mem.rows[want.Key()][want.Time]; got != want {
			t.Errorf("stored %+v, want %+v", got, want)
		}
	}
	if _, err := os.Stat(filepath.Join(move, "traffic_2020-11-14T17_15_15.csv")); err != nil {
		t.Errorf("file not moved: %v", err)
	}
	// the same content again (a second copy, under another name): nothing changes
	before := mem.rows[ctcsv.Key{Proto: 6, Port: 443, Src: mustAddr("10.32.251.1"), Dst: mustAddr("10.32.250.2")}][1605374115000000000]
	write(t, watch, "copy.csv", original)
	res, err = im.Scan(ctx, time.Now())
	if err != nil || len(res) != 1 || res[0].Status != "duplicate" {
		t.Fatalf("second Scan = %+v, %v", res, err)
	}
	after := mem.rows[before.Key()][before.Time]
	if after != before || mem.count() != 3 {
		t.Errorf("second import changed the store: %+v → %+v (%d rows)", before, after, mem.count())
	}
}

func TestImportRejectsMalformedFileWhole(t *testing.T) {
	im, mem, watch, move := setup(t)
	bad := original + "1605374130000000000,tcp,10.32.251.1,not-an-address,443,4,2,300,200,0,0,3\n"
	write(t, watch, "bad.csv", bad)
	write(t, watch, "good.csv", original)
	res, err := im.Scan(context.Background(), time.Now())
	if err != nil || len(res) != 2 {
		t.Fatalf("Scan = %+v, %v", res, err)
	}
	if res[0].Name != "bad.csv" || res[0].Status != "rejected" {
		t.Fatalf("bad.csv: %+v", res[0])
	}
	report, err := os.ReadFile(filepath.Join(move, "rejected", "bad.csv.error.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(report), "line 4") || !strings.Contains(string(report), "not-an-address") {
		t.Errorf("report does not name the offending line:\n%s", report)
	}
	if _, err := os.Stat(filepath.Join(move, "rejected", "bad.csv")); err != nil {
		t.Errorf("rejected file not moved: %v", err)
	}
	// only good.csv's 3 rows: none of bad.csv's 3 valid lines were imported
	if mem.count() != 3 || len(mem.ids) != 1 {
		t.Errorf("store has %d rows from %d files, want 3 from 1", mem.count(), len(mem.ids))
	}
}

func TestImportWaitsForFilesToSettle(t *testing.T) {
	dir := t.TempDir()
	mem := newMem()
	im, err := New(Config{Watch: filepath.Join(dir, "w"), Move: filepath.Join(dir, "m"), Settle: time.Minute}, mem, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "w"), "t.csv", original)
	write(t, filepath.Join(dir, "w"), ".traffic.csv.tmp", original) // the agent's temporary name
	if res, _ := im.Scan(context.Background(), time.Now()); len(res) != 0 {
		t.Errorf("a file still being written was read: %+v", res)
	}
	if res, _ := im.Scan(context.Background(), time.Now().Add(2*time.Minute)); len(res) != 1 {
		t.Errorf("settled file not read: %+v", res)
	}
}

func TestImportWriterOutput(t *testing.T) {
	// files written by netledger conntrack -output import with the same meaning
	im, mem, watch, _ := setup(t)
	w, err := ctcsv.Open(ctcsv.Config{Dir: watch}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rows := []ctcsv.Row{{Time: 1e18, Proto: 6, Src: mustAddr("fd00::a:0"), Dst: mustAddr("fd00::b:0"), Port: -1, SrcBytes: 10, SrcPackets: 1}}
	if err := w.Write(time.Unix(1e9, 0), rows); err != nil {
		t.Fatal(err)
	}
	if res, err := im.Scan(context.Background(), time.Now()); err != nil || len(res) != 1 || res[0].Status != "imported" {
		t.Fatalf("Scan = %+v, %v", res, err)
	}
	if got := mem.rows[rows[0].Key()][rows[0].Time]; got != rows[0] {
		t.Errorf("stored %+v, want %+v", got, rows[0])
	}
}

// TestImportContinuesPastFailingFile: a file whose move fails (rejected/ is not a folder) is
// counted and left for the next poll, and the files after it are still imported.
func TestImportContinuesPastFailingFile(t *testing.T) {
	im, mem, watch, move := setup(t)
	rejected := filepath.Join(move, "rejected")
	if err := os.Remove(rejected); err != nil {
		t.Fatal(err)
	}
	write(t, move, "rejected", "not a folder") // moving a rejected file there fails
	write(t, watch, "a.csv", "garbage\n")
	write(t, watch, "b.csv", original)
	res, err := im.Scan(context.Background(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "a.csv") {
		t.Errorf("Scan error = %v, want one naming a.csv", err)
	}
	if len(res) != 2 || res[0].Name != "a.csv" || res[0].Status != "error" || res[1].Name != "b.csv" || res[1].Status != "imported" {
		t.Fatalf("Scan = %+v", res)
	}
	if mem.count() != 3 {
		t.Errorf("store has %d rows, want b.csv's 3", mem.count())
	}
	if _, err := os.Stat(filepath.Join(move, "b.csv")); err != nil {
		t.Errorf("b.csv not moved: %v", err)
	}
	if _, err := os.Stat(filepath.Join(watch, "a.csv")); err != nil {
		t.Errorf("a.csv not left in place for the next poll: %v", err)
	}
	if n := testutil.ToFloat64(im.files.WithLabelValues("error")); n != 1 {
		t.Errorf("error files counter = %v, want 1", n)
	}
	// fixed: the next poll handles it
	if err := os.Remove(rejected); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(rejected, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err = im.Scan(context.Background(), time.Now())
	if err != nil || len(res) != 1 || res[0].Status != "rejected" {
		t.Fatalf("next Scan = %+v, %v", res, err)
	}
}
