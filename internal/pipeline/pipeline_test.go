package pipeline

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store"
)

// memStore is an in-memory store.Store: rows added by key, position saved with them. fail
// makes Commit fail before changing anything; lost makes it apply the batch and still
// return an error (a reply lost after the store made the batch durable).
type memStore struct {
	mu      sync.Mutex
	rows    map[rowKey]record.Metrics
	pos     map[string]store.Position
	commits int
	fail    int
	lost    int
}

type rowKey struct {
	view  string
	start time.Time
	res   time.Duration
	dims  record.Dims
}

func newMemStore() *memStore {
	return &memStore{rows: map[rowKey]record.Metrics{}, pos: map[string]store.Position{}}
}

var errInjected = errors.New("injected store failure")

func (s *memStore) Commit(_ context.Context, b store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errInjected
	}
	for _, r := range b.Rows {
		k := rowKey{r.View, r.Start, r.Resolution, r.Dims}
		m := s.rows[k]
		m.Add(&r.Metrics)
		s.rows[k] = m
	}
	s.pos[b.Consumer] = b.Position
	s.commits++
	if s.lost > 0 {
		s.lost--
		return errInjected
	}
	return nil
}

func (s *memStore) Position(_ context.Context, c string) (store.Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos[c], nil
}

func (s *memStore) Replace(context.Context, time.Time, time.Time, store.Batch) error {
	return errors.New("not implemented")
}
func (s *memStore) Top(context.Context, store.Query) ([]store.Result, error) {
	return nil, errors.New("not implemented")
}
func (s *memStore) Series(context.Context, store.Query) ([]store.Result, error) {
	return nil, errors.New("not implemented")
}
func (s *memStore) Expire(context.Context, time.Time) error { return nil }
func (s *memStore) Close() error                            { return nil }

// total sums a view's stored metrics.
func (s *memStore) total(view string) record.Metrics {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t record.Metrics
	for k, m := range s.rows {
		if k.view == view {
			t.Add(&m)
		}
	}
	return t
}

func openSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	cfg := spool.DefaultConfig()
	cfg.Dir = dir
	cfg.SyncInterval = 10 * time.Millisecond
	cfg.SegmentSize = 64 << 10 // several segments
	sp, err := spool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func testEnricher() *enrich.Enricher {
	tab := new(enrich.StaticTable)
	tab.Insert(netip.MustParsePrefix("192.0.2.0/24"), &routing.Attrs{Path: []routing.Segment{{Type: routing.SegmentSequence, ASNs: []uint32{1, 2}}}})
	return enrich.New([]enrich.Router{{Name: "r", ASN: 64500, Table: tab}}, nil)
}

// appendLoad appends n reports (half routed) with i-dependent bytes and returns their total.
func appendLoad(t *testing.T, sp *spool.Spool, from, n int) (bytes uint64) {
	t.Helper()
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixNano()
	recs := make([]record.Record, 0, 256)
	for i := from; i < from+n; i++ {
		client := netip.AddrFrom4([4]byte{192, 0, byte(2 + i%2), byte(i)})
		recs = append(recs, record.Record{Time: base + int64(i)*int64(10*time.Millisecond), Client: client,
			Server: netip.MustParseAddr("10.0.0.1"), Source: record.SourceReportV2, Class: uint16(i % 3),
			Requests: 1, BytesOut: uint64(1000 + i), MSS: 1400})
		bytes += uint64(1000 + i)
		if len(recs) == cap(recs) {
			if err := sp.Append(recs); err != nil {
				t.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := sp.Append(recs); err != nil {
		t.Fatal(err)
	}
	if err := sp.Sync(); err != nil {
		t.Fatal(err)
	}
	return bytes
}

// waitCommitted waits until the store's position is the spool's synced end.
func waitCommitted(t *testing.T, st store.Store, sp *spool.Spool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := st.Position(context.Background(), Consumer)
		if err == nil && p != (store.Position{}) && sp.Lag(spool.Position{Segment: p.Segment, Offset: p.Offset}) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store position %v never reached the spool's end %v", p, sp.Synced())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newPipeline(t *testing.T, sp *spool.Spool, st store.Store, reg prometheus.Registerer) *Pipeline {
	t.Helper()
	cfg := DefaultConfig()
	cfg.CommitInterval = 20 * time.Millisecond
	p, err := New(cfg, Deps{Spool: sp, Store: st, Enricher: testEnricher(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func start(p *Pipeline) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// checkTotals checks every trafstat view holds exactly the bytes and requests appended.
func checkTotals(t *testing.T, st *memStore, bytes uint64, n int) {
	t.Helper()
	for _, v := range []string{"prefix", "country", "origin", "router"} {
		tot := st.total(v)
		if tot.Bytes != bytes || tot.Requests != uint64(n) {
			t.Errorf("view %s: %d bytes, %d requests stored; want %d, %d", v, tot.Bytes, tot.Requests, bytes, n)
		}
	}
}

// TestRestartsCountOnce runs the pipeline over three loads with restarts in between, one of
// them with an unclean stop (the pipeline's state dropped without the final commit): totals
// equal what was appended.
func TestRestartsCountOnce(t *testing.T) {
	dir := t.TempDir()
	sp := openSpool(t, dir)
	defer sp.Close()
	st := newMemStore()
	reg := prometheus.NewRegistry()

	var bytes uint64
	bytes += appendLoad(t, sp, 0, 5000)
	p := newPipeline(t, sp, st, reg)
	stop := start(p)
	waitCommitted(t, st, sp)
	bytes += appendLoad(t, sp, 5000, 5000)
	waitCommitted(t, st, sp)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, st, bytes, 10000)
	if got := testutil.ToFloat64(p.m.records); got != 10000 {
		t.Errorf("records counter = %v, want 10000", got)
	}

	// a new pipeline (a restarted process) over more records
	bytes += appendLoad(t, sp, 10000, 3000)
	p = newPipeline(t, sp, st, nil)
	stop = start(p)
	waitCommitted(t, st, sp)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, st, bytes, 13000)
	if as := st.total("as_path"); as.Bytes != 2*st.total("prefix").Bytes-2*unroutedBytes(st) {
		t.Errorf("as_path holds %d bytes, want 2 × routed bytes", as.Bytes)
	}

	// records accounted but never committed (a crash between reading and committing) are
	// counted by the next run
	bytes += appendLoad(t, sp, 13000, 2000)
	p = newPipeline(t, sp, st, nil)
	r, err := p.open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b := p.batches[0]
	if p.read(r, b) == 0 || b.err != nil {
		t.Fatalf("read nothing (%v)", b.err)
	}
	p.pos = b.pos
	p.process(p.workers[0], b)
	p.taken(b)
	r.Close() // crash: nothing committed
	p = newPipeline(t, sp, st, nil)
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, st, bytes, 15000)
}

func unroutedBytes(st *memStore) uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	var b uint64
	for k, m := range st.rows {
		if k.view == "prefix" && !k.dims.Prefix.IsValid() {
			b += m.Bytes
		}
	}
	return b
}

// TestCommitRetries: failed commits are retried with the same batch, and a commit whose reply
// was lost after the store applied it is not applied twice.
func TestCommitRetries(t *testing.T) {
	for _, tc := range []struct {
		name       string
		fail, lost int
	}{{"failures", 3, 0}, {"lost reply", 0, 1}, {"both", 2, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			sp := openSpool(t, t.TempDir())
			defer sp.Close()
			st := newMemStore()
			st.fail, st.lost = tc.fail, tc.lost
			bytes := appendLoad(t, sp, 0, 4000)
			p := newPipeline(t, sp, st, prometheus.NewRegistry())
			stop := start(p)
			waitCommitted(t, st, sp)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			checkTotals(t, st, bytes, 4000)
			if got := testutil.ToFloat64(p.m.commitErrors); got != float64(tc.fail+tc.lost) {
				t.Errorf("commit errors counter = %v, want %d", got, tc.fail+tc.lost)
			}
		})
	}
}

// TestShutdownCommitsOpenIntervals: rows of the still-open interval are committed at shutdown,
// with the position after them.
func TestShutdownCommitsOpenIntervals(t *testing.T) {
	sp := openSpool(t, t.TempDir())
	defer sp.Close()
	st := newMemStore()
	cfg := DefaultConfig()
	cfg.CommitInterval = time.Hour // only the shutdown commits
	p, err := New(cfg, Deps{Spool: sp, Store: st, Enricher: testEnricher()})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(p)
	bytes := appendLoad(t, sp, 0, 1000)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	waitCommitted(t, st, sp)
	checkTotals(t, st, bytes, 1000)
}
