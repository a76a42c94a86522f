package replay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store"
)

// memStore keeps one metric sum per interval start.
type memStore struct {
	store.Store
	pos  store.Position
	rows map[time.Time]record.Metrics
}

func (m *memStore) Position(context.Context, string) (store.Position, error) { return m.pos, nil }

func (m *memStore) Replace(_ context.Context, from, to time.Time, b store.Batch) error {
	if b.Consumer != "" {
		return errors.New("replay must not move the pipeline's position")
	}
	for t := range m.rows {
		if !t.Before(from) && t.Before(to) {
			delete(m.rows, t)
		}
	}
	for _, r := range b.Rows {
		x := m.rows[r.Start]
		x.Add(&r.Metrics)
		m.rows[r.Start] = x
	}
	return nil
}

func (m *memStore) totals(_ context.Context, from, to time.Time) (record.Metrics, error) {
	var s record.Metrics
	for t, x := range m.rows {
		if !t.Before(from) && t.Before(to) {
			s.Add(&x)
		}
	}
	return s, nil
}

// minuteAcc sums records per minute; scale multiplies bytes (a "better table").
type minuteAcc struct {
	sums  map[time.Time]record.Metrics
	scale uint64
}

func (a *minuteAcc) AddBatch(recs []record.Record) {
	for _, r := range recs {
		t := time.Unix(0, r.Time).UTC().Truncate(time.Minute)
		x := a.sums[t]
		x.Requests++
		x.Bytes += r.BytesOut * a.scale
		a.sums[t] = x
	}
}

func (a *minuteAcc) Rows(dst []record.Row) []record.Row {
	for t, m := range a.sums {
		dst = append(dst, record.Row{View: "t", Start: t, Resolution: time.Minute, Metrics: m})
	}
	a.sums = map[time.Time]record.Metrics{}
	return dst
}

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func rec(min int, bytes uint64) record.Record {
	return record.Record{Time: t0.Add(time.Duration(min)*time.Minute + time.Second).UnixNano(), Client: netip.MustParseAddr("192.0.2.1"), BytesOut: bytes, Requests: 1}
}

// setup spools one record per minute for minutes 0..9 (bytes = 100+minute), accounts them
// all (scale 1) and commits the position after the first n of them.
func setup(t *testing.T, n int) (*spool.Spool, *memStore) {
	cfg := spool.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "spool")
	sp, err := spool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	st := &memStore{rows: map[time.Time]record.Metrics{}}
	acc := &minuteAcc{sums: map[time.Time]record.Metrics{}, scale: 1}
	for i := 0; i < 10; i++ {
		r := rec(i, uint64(100+i))
		if err := sp.Append([]record.Record{r}); err != nil {
			t.Fatal(err)
		}
		if i < n {
			acc.AddBatch([]record.Record{r})
		}
	}
	if err := sp.Sync(); err != nil {
		t.Fatal(err)
	}
	rd, err := sp.NewReader(spool.Position{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	buf := make([]record.Record, n)
	if n > 0 {
		_, p, err := rd.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		st.pos = store.Position{Segment: p.Segment, Offset: p.Offset}
	}
	st.Replace(context.Background(), t0, t0.Add(time.Hour), store.Batch{Rows: acc.Rows(nil)})
	return sp, st
}

func TestReplay(t *testing.T) {
	sp, st := setup(t, 8) // minutes 8 and 9 are spooled but not accounted yet
	ctx := context.Background()
	acc := &minuteAcc{sums: map[time.Time]record.Metrics{}, scale: 2}
	res, err := Run(ctx, Config{Spool: sp, Store: st, Consumer: "accounting", From: t0.Add(2*time.Minute + 30*time.Second), To: t0.Add(20 * time.Minute),
		Interval: time.Minute, Window: 20 * time.Second, Totals: st.totals}, acc)
	if err != nil {
		t.Fatal(err)
	}
	// minutes 2..7 replayed (twice the bytes), 0..1 untouched, 8..9 left to the pipeline
	if res.Read != 8 || res.Replayed != 6 || res.Rows != 6 || !res.From.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("result %+v", res)
	}
	if res.Before.Requests != 6 || res.After.Requests != 6 || res.After.Bytes != 2*res.Before.Bytes {
		t.Errorf("before %+v after %+v", res.Before, res.After)
	}
	for i := 0; i < 10; i++ {
		want := uint64(100 + i)
		if i >= 2 && i < 8 {
			want *= 2
		}
		if i >= 8 {
			want = 0
		}
		if got := st.rows[t0.Add(time.Duration(i)*time.Minute)].Bytes; got != want {
			t.Errorf("minute %d: %d bytes, want %d", i, got, want)
		}
	}
	// replaying again changes nothing
	acc.scale = 2
	if _, err := Run(ctx, Config{Spool: sp, Store: st, Consumer: "accounting", From: t0.Add(2 * time.Minute), To: t0.Add(20 * time.Minute),
		Interval: time.Minute, Window: 20 * time.Second, Totals: st.totals}, acc); err != nil {
		t.Fatal(err)
	}
	if got := st.rows[t0.Add(5*time.Minute)].Bytes; got != 210 {
		t.Errorf("second replay: %d bytes, want 210", got)
	}
}

func TestReplayRefusesBadInterval(t *testing.T) {
	sp, st := setup(t, 8)
	for _, iv := range []time.Duration{0, -time.Minute, 7 * time.Minute} {
		_, err := Run(context.Background(), Config{Spool: sp, Store: st, Consumer: "accounting", From: t0.Add(30 * time.Second), To: t0.Add(time.Hour),
			Interval: iv, Totals: st.totals}, &minuteAcc{sums: map[time.Time]record.Metrics{}, scale: 2})
		if err == nil {
			t.Errorf("interval %v accepted", iv)
		}
	}
	if got := st.rows[t0].Bytes; got != 100 {
		t.Errorf("refused replays changed minute 0: %d bytes, want 100", got)
	}
}

func TestReplayNothingAccounted(t *testing.T) {
	sp, st := setup(t, 0)
	_, err := Run(context.Background(), Config{Spool: sp, Store: st, From: t0, To: t0.Add(time.Hour), Interval: time.Minute, Totals: st.totals},
		&minuteAcc{sums: map[time.Time]record.Metrics{}, scale: 1})
	if !errors.Is(err, ErrNothingAccounted) {
		t.Errorf("error %v", err)
	}
}

func TestReplayExpired(t *testing.T) {
	cfg := spool.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "spool")
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Minute)
	st := &memStore{rows: map[time.Time]record.Metrics{}}
	for seg := 0; seg < 2; seg++ { // segment 1, then segment 2 after a restart
		sp, err := spool.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r := record.Record{Time: base.Add(time.Duration(seg) * time.Minute).UnixNano(), BytesOut: 5, Requests: 1}
		sp.Append([]record.Record{r})
		sp.Close()
		st.rows[base.Add(time.Duration(seg)*time.Minute)] = record.Metrics{Requests: 1, Bytes: 5}
	}
	// retention deleted segment 1
	if err := os.Remove(filepath.Join(cfg.Dir, fmt.Sprintf("%020d.seg", 1))); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	st.pos = store.Position{Segment: 3, Offset: 32}
	c := Config{Spool: sp, Store: st, Consumer: "accounting", From: base, To: base.Add(time.Hour), Interval: time.Minute, Window: 20 * time.Second, Totals: st.totals}
	_, err = Run(context.Background(), c, &minuteAcc{sums: map[time.Time]record.Metrics{}, scale: 1})
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("error %v, want ErrExpired", err)
	}
	t.Log(err)
	if len(st.rows) != 2 {
		t.Error("rows changed by a refused replay")
	}
}

// A pipeline that caught up just as the spool started a new segment commits the start of that
// segment; the records after it are the pipeline's, and replay must not take the first one.
func TestReplayStopsAtCommittedSegmentStart(t *testing.T) {
	cfg := spool.DefaultConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "spool")
	st := &memStore{rows: map[time.Time]record.Metrics{}}
	var sp *spool.Spool
	for seg := 0; seg < 2; seg++ { // minutes 0..4 in segment 1, 5..9 in segment 2 after a restart
		var err error
		if sp, err = spool.Open(cfg); err != nil {
			t.Fatal(err)
		}
		for i := 5 * seg; i < 5*seg+5; i++ {
			r := rec(i, uint64(100+i))
			if err := sp.Append([]record.Record{r}); err != nil {
				t.Fatal(err)
			}
			if seg == 0 {
				st.rows[t0.Add(time.Duration(i)*time.Minute)] = record.Metrics{Requests: 1, Bytes: r.BytesOut}
			}
		}
		if err := sp.Sync(); err != nil {
			t.Fatal(err)
		}
		if seg == 0 {
			sp.Close()
		}
	}
	defer sp.Close()
	p := spool.SegmentStart(2) // the pipeline accounted segment 1 and stopped
	st.pos = store.Position{Segment: p.Segment, Offset: p.Offset}
	acc := &minuteAcc{sums: map[time.Time]record.Metrics{}, scale: 2}
	res, err := Run(context.Background(), Config{Spool: sp, Store: st, Consumer: "accounting", From: t0, To: t0.Add(time.Hour),
		Interval: time.Minute, Window: 20 * time.Second, Totals: st.totals}, acc)
	if err != nil {
		t.Fatal(err)
	}
	if res.Read != 5 || res.Replayed != 5 {
		t.Errorf("read %d, replayed %d records; want the 5 of segment 1", res.Read, res.Replayed)
	}
	for i := 0; i < 10; i++ {
		want := 2 * uint64(100+i)
		if i >= 5 {
			want = 0 // the pipeline's
		}
		if got := st.rows[t0.Add(time.Duration(i)*time.Minute)].Bytes; got != want {
			t.Errorf("minute %d: %d bytes, want %d", i, got, want)
		}
	}
}
