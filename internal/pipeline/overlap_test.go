package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/store"
	"github.com/netledger/netledger/internal/testenv"
)

// blockingStore is a memStore whose first commit waits until release is closed (a slow
// commit), after signalling entered.
type blockingStore struct {
	*memStore
	once             sync.Once
	entered, release chan struct{}
}

func (s *blockingStore) Commit(ctx context.Context, b store.Batch) error {
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	return s.memStore.Commit(ctx, b)
}

// TestAccountingGoesOnDuringCommit: while a commit is in flight the accounting goroutine keeps
// adding batches (it used to wait for the commit, and the reader for it after readAhead
// batches): the reader reads far more than readAhead batches while the first commit is held,
// and after it lands every record is committed exactly once.
func TestAccountingGoesOnDuringCommit(t *testing.T) {
	sp := openSpool(t, t.TempDir())
	defer sp.Close()
	st := &blockingStore{memStore: newMemStore(), entered: make(chan struct{}), release: make(chan struct{})}
	p := newPipeline(t, sp, st, prometheus.NewRegistry())
	stop := start(p)
	bytes := appendLoad(t, sp, 0, 1000)
	<-st.entered // the first commit is held
	before := testutil.ToFloat64(p.m.batches)
	const more = 4 * readAhead
	n := 1000
	for i := range more {
		// one batch each: the reader has caught up before the next is appended
		bytes += appendLoad(t, sp, n, 100)
		n += 100
		testenv.WaitFor(t, "the reader to read a batch while a commit is held", func() bool {
			return testutil.ToFloat64(p.m.batches) >= before+float64(i+1)
		})
	}
	close(st.release)
	waitCommitted(t, st, sp)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, st.memStore, bytes, n)
}

// failingStore is a memStore whose commits fail while failing is set.
type failingStore struct {
	*memStore
	failing  atomic.Bool
	attempts atomic.Int64
}

func (s *failingStore) Commit(ctx context.Context, b store.Batch) error {
	s.attempts.Add(1)
	if s.failing.Load() {
		return errInjected
	}
	return s.memStore.Commit(ctx, b)
}

// TestAbandonedCommitGoesWithTheFinal: a commit still failing at shutdown is abandoned, and its
// rows and counts are committed with the final commit's (nothing lost, nothing doubled), with
// or without records accounted after it.
func TestAbandonedCommitGoesWithTheFinal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after int
	}{{"more records after it", 500}, {"nothing after it", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			sp := openSpool(t, t.TempDir())
			defer sp.Close()
			st := &failingStore{memStore: newMemStore()}
			st.failing.Store(true)
			p := newPipeline(t, sp, st, prometheus.NewRegistry())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			bytes := appendLoad(t, sp, 0, 1000)
			testenv.WaitFor(t, "a failed commit", func() bool { return st.attempts.Load() >= 1 })
			if tc.after > 0 {
				bytes += appendLoad(t, sp, 1000, tc.after) // accounted while the first commit is retried
				testenv.WaitFor(t, "more records read", func() bool { return testutil.ToFloat64(p.m.batches) >= 2 })
			}
			cancel() // the commit in flight is abandoned
			time.Sleep(20 * time.Millisecond)
			st.failing.Store(false) // the final commit (retried) lands
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			waitCommitted(t, st, sp)
			n := 1000 + tc.after
			checkTotals(t, st.memStore, bytes, n)
			if got := testutil.ToFloat64(p.m.records); got != float64(n) {
				t.Errorf("records counter = %v, want %d", got, n)
			}
			if got := testutil.ToFloat64(p.m.unrouted); got != float64(n/2) { // appendLoad: half unrouted
				t.Errorf("unrouted counter = %v, want %d", got, n/2)
			}
		})
	}
}

// TestFailingCommitStopsReading: once a commit has failed, the next commit that falls due waits
// for it, so that a store that is down stops the reading (the backlog stays in the spool)
// instead of the accounting holding ever more intervals in memory; when the store is back,
// everything is committed once.
func TestFailingCommitStopsReading(t *testing.T) {
	sp := openSpool(t, t.TempDir())
	defer sp.Close()
	st := &failingStore{memStore: newMemStore()}
	st.failing.Store(true)
	// a commit is due after every batch: with newPipeline's 20 ms, the accounting could take
	// every batch below before the next commit fell due, and the reading never stopped
	cfg := DefaultConfig()
	cfg.CommitInterval = time.Nanosecond
	p, err := New(cfg, Deps{Spool: sp, Store: st, Enricher: testEnricher(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	stop := start(p)
	bytes := appendLoad(t, sp, 0, 1000)
	testenv.WaitFor(t, "a failed commit", func() bool { return st.attempts.Load() >= 1 })
	n := (len(p.batches) + 6) * readBatch // more batches than the pipeline holds
	bytes += appendLoad(t, sp, 1000, n)
	testenv.WaitFor(t, "the reader to wait for a free batch", func() bool { return testutil.ToFloat64(p.m.readerStalls) >= 1 })
	time.Sleep(300 * time.Millisecond) // time to read everything, were the reading not stopped
	if got := testutil.ToFloat64(p.m.batches); got >= float64(1+n/readBatch) {
		t.Errorf("%v batches read while the store was down, want fewer than %d", got, 1+n/readBatch)
	}
	st.failing.Store(false)
	waitCommitted(t, st, sp)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	checkTotals(t, st.memStore, bytes, 1000+n)
}
