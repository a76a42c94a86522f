// Package client sends per-request traffic reports to a netledger collector (report protocol
// v2, docs/protocol.md). A Client batches reports into signed datagrams, sent when full or
// 100 ms after their first report; Report never blocks the request path: when the bounded
// queue is full the report is dropped and counted. Middleware reports every request of a
// net/http server with TCP_INFO from its connection.
package client

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/report"
)

// Record is one report: what a web server knows about a request it served. Set Time, Client,
// BytesOut and what else is known (Server, PacketsOut, Retransmits, MSS, RTT, RTTVar, Duration
// in µs, Class, Requests); other fields are not sent.
type Record = record.Record

// Config configures a Client.
type Config struct {
	// Addr is the collector's UDP address, host:port.
	Addr string
	// KeyID and Key are the signing key, as configured on the collector (Key ≥ 16 bytes).
	KeyID uint32
	Key   []byte
	// SenderID identifies this process to the collector's replay filter; 0 draws a random one.
	SenderID uint64
	// PayloadSize is the datagram size to fill up to (default 1400 bytes).
	PayloadSize int
	// QueueSize bounds the reports waiting to be sent (default 8192); beyond, reports are
	// dropped and counted.
	QueueSize int
	// FlushInterval is the longest a report waits for its datagram to fill (default 100 ms).
	FlushInterval time.Duration
}

// Stats are a Client's counters.
type Stats struct {
	// Reported counts reports queued; Dropped those refused because the queue was full.
	Reported, Dropped uint64
	// Datagrams counts datagrams sent; SendErrors those the socket refused (their reports are
	// lost).
	Datagrams, SendErrors uint64
}

// Client batches and sends reports. It is safe for concurrent use.
type Client struct {
	cfg     Config
	conn    *net.UDPConn
	builder *report.Builder
	queue   chan Record
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	seq     uint64

	reported, dropped, datagrams, sendErrors atomic.Uint64
}

// New connects a client to cfg.Addr and starts its sending goroutine.
func New(cfg Config) (*Client, error) {
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 8192
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	if cfg.QueueSize < 0 || cfg.FlushInterval < 0 {
		return nil, errors.New("client queue size and flush interval must not be negative")
	}
	if cfg.SenderID == 0 {
		var b [8]byte
		rand.Read(b[:])
		cfg.SenderID = binary.LittleEndian.Uint64(b[:]) | 1
	}
	builder, err := report.NewBuilder(report.Key{ID: cfg.KeyID, Secret: cfg.Key}, cfg.PayloadSize)
	if err != nil {
		return nil, fmt.Errorf("cannot build report client: %w", err)
	}
	raddr, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve collector address: %w", err)
	}
	conn, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to collector: %w", err)
	}
	c := &Client{
		cfg:     cfg,
		conn:    conn,
		builder: builder,
		queue:   make(chan Record, cfg.QueueSize),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		// Time-derived start: a restarted sender continues above its previous sequence.
		seq: uint64(time.Now().UnixNano()),
	}
	go c.loop()
	return c, nil
}

// Report queues r without blocking; when the queue is full r is dropped (see Stats). Reports
// after Close are dropped. A zero Time is set to now.
func (c *Client) Report(r Record) {
	if r.Time == 0 {
		r.Time = time.Now().UnixNano()
	}
	select {
	case <-c.stop:
		c.dropped.Add(1)
		return
	default:
	}
	select {
	case c.queue <- r:
		c.reported.Add(1)
	default:
		c.dropped.Add(1)
	}
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Reported:   c.reported.Load(),
		Dropped:    c.dropped.Load(),
		Datagrams:  c.datagrams.Load(),
		SendErrors: c.sendErrors.Load(),
	}
}

// Close sends what is queued and closes the socket.
func (c *Client) Close() error {
	c.once.Do(func() { close(c.stop) })
	<-c.done
	return c.conn.Close()
}

func (c *Client) loop() {
	defer close(c.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pending := false
	add := func(r *Record) {
		if !pending {
			c.seq++
			c.builder.Start(c.cfg.SenderID, c.seq, time.Now().UnixNano())
			pending = true
			timer.Reset(c.cfg.FlushInterval)
		}
		if !c.builder.Add(r) {
			c.send()
			c.seq++
			c.builder.Start(c.cfg.SenderID, c.seq, time.Now().UnixNano())
			timer.Reset(c.cfg.FlushInterval)
			c.builder.Add(r)
		}
	}
	flush := func() {
		if pending {
			c.send()
			pending = false
			timer.Stop()
		}
	}
	for {
		select {
		case r := <-c.queue:
			add(&r)
		case <-timer.C:
			flush()
		case <-c.stop:
			for {
				select {
				case r := <-c.queue:
					add(&r)
				default:
					flush()
					return
				}
			}
		}
	}
}

func (c *Client) send() {
	if _, err := c.conn.Write(c.builder.Finish()); err != nil {
		c.sendErrors.Add(1)
		return
	}
	c.datagrams.Add(1)
}
