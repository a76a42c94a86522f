package sqlite

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelRows is the number of rows of a write from which its keys are hashed and its blobs
// encoded on GOMAXPROCS goroutines while the writing goroutine groups the rows and inserts the
// finished blobs; smaller writes (a running collector's minute) do all of it on the writing
// goroutine, where starting goroutines would cost more than it saves. A variable for the tests,
// which compare both paths.
var parallelRows = 20000

// blobJobs is the blobs of a write, encoded by job functions either on a pool of goroutines
// (started by newBlobJobs, ahead of the writer) or by the writer itself when it asks for them
// (serial). The writer takes them in its own order, so that the blobs are inserted — and get
// their ids — exactly as when encoded one by one.
type blobJobs struct {
	encode func(i int) []byte // the i-th blob; nil when the job has nothing to encode
	blobs  [][]byte
	done   []chan struct{} // closed when blobs[i] is set; nil when serial
}

// newBlobJobs returns n jobs; when parallel, min(GOMAXPROCS, n) goroutines encode them in
// order of index, so that the writer's first blobs come first. encode must only read what no
// one changes until every job is taken (wait).
func newBlobJobs(n int, parallel bool, encode func(i int) []byte) *blobJobs {
	j := &blobJobs{encode: encode}
	if !parallel || n == 0 {
		return j
	}
	j.blobs = make([][]byte, n)
	j.done = make([]chan struct{}, n)
	for i := range j.done {
		j.done[i] = make(chan struct{})
	}
	var next atomic.Int64
	for range min(runtime.GOMAXPROCS(0), n) {
		go func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				j.blobs[i] = encode(i)
				close(j.done[i])
			}
		}()
	}
	return j
}

// get returns the i-th blob (waiting for it when parallel), and forgets it.
func (j *blobJobs) get(i int) []byte {
	if j.done == nil {
		return j.encode(i)
	}
	<-j.done[i]
	b := j.blobs[i]
	j.blobs[i] = nil
	return b
}

// wait waits until every job has finished, so that a write that fails before taking all its
// blobs does not leave goroutines reading the series index it is about to truncate.
func (j *blobJobs) wait() {
	for _, d := range j.done {
		<-d
	}
}

// hashAll sets hs[i] to hash(i) for i < n, on
// GOMAXPROCS goroutines, one span of rows each: hashing reads every row's strings, a cache
// miss on most.
func hashAll(n int, hs []uint64, hash func(i int) uint64) {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				hs[i] = hash(i)
			}
		}()
	}
	wg.Wait()
}
