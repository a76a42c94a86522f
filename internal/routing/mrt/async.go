package mrt

import (
	"io"
	"sync"
)

// asyncReader decompresses in its own goroutine, a few chunks ahead of the decoder, so that
// inflating and decoding use two cores. Close stops the goroutine.
type asyncReader struct {
	full   chan []byte
	free   chan []byte
	done   chan struct{}
	cur    []byte
	buf    []byte
	err    error // set before full is closed
	closed sync.Once
}

const asyncChunk = 256 << 10

func newAsyncReader(src io.Reader) *asyncReader {
	a := &asyncReader{
		full: make(chan []byte, 4),
		free: make(chan []byte, 5),
		done: make(chan struct{}),
	}
	for i := 0; i < 5; i++ {
		a.free <- make([]byte, asyncChunk)
	}
	go a.fill(src)
	return a
}

func (a *asyncReader) fill(src io.Reader) {
	defer close(a.full)
	for {
		var b []byte
		select {
		case b = <-a.free:
		case <-a.done:
			return
		}
		n, err := readChunk(src, b)
		if n > 0 {
			select {
			case a.full <- b[:n]:
			case <-a.done:
				return
			}
		}
		if err != nil {
			a.err = err
			return
		}
	}
}

// readChunk fills b unless the source ends or fails first; unlike io.ReadFull it passes the
// source's error through unchanged (io.EOF at a clean end, the decompressor's error otherwise).
func readChunk(src io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := src.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (a *asyncReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)]
			a.buf = nil
		}
		b, ok := <-a.full
		if !ok {
			return 0, a.err
		}
		a.buf, a.cur = b, b
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the decompressing goroutine.
func (a *asyncReader) Close() error {
	a.closed.Do(func() {
		close(a.done)
		for range a.full {
		}
	})
	return nil
}
