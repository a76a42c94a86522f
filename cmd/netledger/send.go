package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/ipv4"

	"github.com/netledger/netledger/client"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/report"
)

// sendFlags are the flags of `netledger send`.
type sendFlags struct {
	addr, key, keyFile    string
	keyID                 uint32
	senderID              uint64
	payloadSize           int
	v1                    bool
	format                string
	count, clients, batch int
	rate                  float64
	one                   jsonReport
}

// jsonReport is one report as a JSON line (and the single-report flags).
type jsonReport struct {
	Time        int64  `json:"time"` // Unix ns; 0: now
	Client      string `json:"client"`
	Server      string `json:"server"`
	Bytes       uint64 `json:"bytes"`
	Packets     uint64 `json:"packets"`
	Retransmits uint32 `json:"retransmits"`
	MSS         uint32 `json:"mss"`
	RTT         uint32 `json:"rtt"`
	RTTVar      uint32 `json:"rttvar"`
	Duration    uint64 `json:"duration"` // µs
	Class       uint16 `json:"class"`
	Requests    uint32 `json:"requests"`
}

func init() {
	var f sendFlags
	cmd := &cobra.Command{
		Use:   "send",
		Short: "Send reports to a collector (flags, CSV/JSON lines on stdin, or synthetic load)",
		Long: `Send signed reports to a netledger collector.

  netledger send --key S --client 198.51.100.7 --bytes 1500000 --class 2      one report
  printf '198.51.100.7,1500000,2\n' | netledger send --key S                 CSV lines on stdin
  echo '{"client":"2001:db8::1","bytes":9000}' | netledger send --key S     JSON lines on stdin
  netledger send --key S --count 1000000 --rate 200000 --clients 5000       synthetic load
  netledger send --v1 --key SECRET --count 1000                              trafstat v1 datagrams

CSV columns: client,bytes[,class[,retransmits[,mss[,rtt[,duration_us[,server]]]]]]; lines
starting with "#" or "client," are skipped. JSON fields: time (Unix ns), client, server, bytes,
packets, retransmits, mss, rtt, rttvar (µs), duration (µs), class, requests.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runSend(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8789", "collector UDP address")
	fl.StringVar(&f.key, "key", "", "v2 key secret (v1: the trafstat secret)")
	fl.StringVar(&f.keyFile, "key-file", "", "read the secret from this file (trailing newline removed)")
	fl.Uint32Var(&f.keyID, "key-id", 1, "v2 key id")
	fl.Uint64Var(&f.senderID, "sender-id", 0, "v2 sender id (0: random)")
	fl.IntVar(&f.payloadSize, "payload-size", report.DefaultPayloadSize, "v2 datagram size to fill up to")
	fl.BoolVar(&f.v1, "v1", false, "send trafstat v1 datagrams")
	fl.StringVar(&f.format, "format", "auto", "stdin format: csv, json or auto (per line)")
	fl.IntVar(&f.count, "count", 0, "synthetic load: number of reports")
	fl.Float64Var(&f.rate, "rate", 0, "synthetic load: reports per second (0: as fast as possible)")
	fl.IntVar(&f.clients, "clients", 1000, "synthetic load: distinct client addresses")
	fl.IntVar(&f.batch, "batch", 32, "synthetic load: datagrams per sendmmsg")
	fl.StringVar(&f.one.Client, "client", "", "send one report for this client address")
	fl.StringVar(&f.one.Server, "server", "", "its server address (default: the datagram source)")
	fl.Uint64Var(&f.one.Bytes, "bytes", 0, "its bytes delivered")
	fl.Uint64Var(&f.one.Packets, "packets", 0, "its packets")
	fl.Uint32Var(&f.one.Retransmits, "retransmits", 0, "its TCP retransmits")
	fl.Uint32Var(&f.one.MSS, "mss", 0, "its MSS")
	fl.Uint32Var(&f.one.RTT, "rtt", 0, "its RTT in µs")
	fl.Uint64Var(&f.one.Duration, "duration", 0, "its duration in µs")
	fl.Uint16Var(&f.one.Class, "class", 0, "its traffic class")
	fl.Uint32Var(&f.one.Requests, "requests", 1, "its request count")
	rootCmd.AddCommand(cmd)
}

func (j jsonReport) record() (record.Record, error) {
	c, err := netip.ParseAddr(j.Client)
	if err != nil {
		return record.Record{}, fmt.Errorf("client address: %w", err)
	}
	r := record.Record{
		Time: j.Time, Client: c.Unmap(), BytesOut: j.Bytes, PacketsOut: j.Packets, Retransmits: j.Retransmits,
		MSS: j.MSS, RTT: j.RTT, RTTVar: j.RTTVar, Duration: j.Duration, Class: j.Class, Requests: j.Requests,
	}
	if j.Server != "" {
		s, err := netip.ParseAddr(j.Server)
		if err != nil {
			return r, fmt.Errorf("server address: %w", err)
		}
		r.Server = s.Unmap()
	}
	if r.Time == 0 {
		r.Time = time.Now().UnixNano()
	}
	return r, nil
}

func parseCSV(line string) (record.Record, error) {
	fields, err := csv.NewReader(strings.NewReader(line)).Read()
	if err != nil {
		return record.Record{}, err
	}
	if len(fields) < 2 || len(fields) > 8 {
		return record.Record{}, fmt.Errorf("want 2 to 8 columns, got %d", len(fields))
	}
	j := jsonReport{Client: strings.TrimSpace(fields[0]), Requests: 1}
	nums := []any{&j.Bytes, &j.Class, &j.Retransmits, &j.MSS, &j.RTT, &j.Duration}
	for i, s := range fields[1:] {
		s = strings.TrimSpace(s)
		if i == 6 {
			j.Server = s
			break
		}
		var err error
		switch p := nums[i].(type) {
		case *uint64:
			*p, err = strconv.ParseUint(s, 10, 64)
		case *uint32:
			var v uint64
			v, err = strconv.ParseUint(s, 10, 32)
			*p = uint32(v)
		case *uint16:
			var v uint64
			v, err = strconv.ParseUint(s, 10, 16)
			*p = uint16(v)
		}
		if err != nil {
			return record.Record{}, fmt.Errorf("column %d: %w", i+2, err)
		}
	}
	return j.record()
}

// loadKey returns the report key given by --key, or read from --key-file (trailing newline
// dropped); one of them is required.
func loadKey(key, keyFile string) (string, error) {
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return "", fmt.Errorf("cannot read key file: %w", err)
		}
		key = strings.TrimRight(string(b), "\r\n")
	}
	if key == "" {
		return "", errors.New("--key or --key-file is required")
	}
	return key, nil
}

func runSend(cmd *cobra.Command, f sendFlags) error {
	key, err := loadKey(f.key, f.keyFile)
	if err != nil {
		return err
	}
	f.key = key
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
	defer stop()
	if f.count > 0 {
		return sendSynthetic(ctx, cmd.ErrOrStderr(), f)
	}
	s, err := newSender(f)
	if err != nil {
		return err
	}
	if f.one.Client != "" {
		r, err := f.one.record()
		if err != nil {
			return err
		}
		s.send(&r)
		return s.close(cmd.ErrOrStderr())
	}
	sc := bufio.NewScanner(cmd.InOrStdin())
	lineNo, bad := 0, 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "client,") {
			continue
		}
		var r record.Record
		var err error
		if f.format == "json" || (f.format == "auto" && strings.HasPrefix(line, "{")) {
			var j jsonReport
			if err = json.Unmarshal([]byte(line), &j); err == nil {
				r, err = j.record()
			}
		} else {
			r, err = parseCSV(line)
		}
		if err != nil {
			bad++
			fmt.Fprintf(cmd.ErrOrStderr(), "line %d: %v\n", lineNo, err)
			continue
		}
		s.send(&r)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("cannot read stdin: %w", err)
	}
	if err := s.close(cmd.ErrOrStderr()); err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%d bad lines", bad)
	}
	return nil
}

// sender sends reports one by one: through the client package (v2) or as v1 datagrams.
type sender struct {
	c      *client.Client
	conn   net.Conn
	secret string
	buf    []byte
	n      int
}

func newSender(f sendFlags) (*sender, error) {
	if f.v1 {
		conn, err := net.Dial("udp", f.addr)
		if err != nil {
			return nil, err
		}
		return &sender{conn: conn, secret: f.key, buf: make([]byte, report.V1Size)}, nil
	}
	c, err := client.New(client.Config{Addr: f.addr, KeyID: f.keyID, Key: []byte(f.key), SenderID: f.senderID,
		PayloadSize: f.payloadSize, QueueSize: 1 << 16})
	if err != nil {
		return nil, err
	}
	return &sender{c: c}, nil
}

func (s *sender) send(r *record.Record) {
	s.n++
	if s.c != nil {
		s.c.Report(*r)
		return
	}
	report.EncodeV1(s.buf, r, s.secret)
	s.conn.Write(s.buf)
}

func (s *sender) close(w io.Writer) error {
	if s.c != nil {
		err := s.c.Close()
		st := s.c.Stats()
		fmt.Fprintf(w, "sent %d reports in %d datagrams (%d dropped, %d send errors)\n", st.Reported, st.Datagrams, st.Dropped, st.SendErrors)
		return err
	}
	fmt.Fprintf(w, "sent %d v1 reports\n", s.n)
	return s.conn.Close()
}

// sendSynthetic sends f.count generated reports at f.rate with sendmmsg, building datagrams
// directly (no queue, so nothing is dropped on the sending side).
func sendSynthetic(ctx context.Context, w io.Writer, f sendFlags) error {
	conn, err := net.Dial("udp", f.addr)
	if err != nil {
		return fmt.Errorf("cannot connect to collector: %w", err)
	}
	defer conn.Close()
	pc := ipv4.NewPacketConn(conn.(*net.UDPConn))
	clients := make([]netip.Addr, max(f.clients, 1))
	for i := range clients {
		if i%4 == 3 {
			clients[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 8: byte(i >> 24), 9: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)})
		} else {
			clients[i] = netip.AddrFrom4([4]byte{byte(1 + (i*7)%223), byte(i * 13), byte(i * 31), byte(1 + i%250)})
		}
	}
	var builder *report.Builder
	if !f.v1 {
		senderID := f.senderID
		if senderID == 0 {
			senderID = uint64(time.Now().UnixNano())
		}
		builder, err = report.NewBuilder(report.Key{ID: f.keyID, Secret: []byte(f.key)}, f.payloadSize)
		if err != nil {
			return err
		}
		f.senderID = senderID
	}
	batch := max(f.batch, 1)
	msgs := make([]ipv4.Message, batch)
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 0, 65536)
		msgs[i].Buffers = [][]byte{nil}
	}
	seq := uint64(time.Now().UnixNano())
	start := time.Now()
	var sent, datagrams int
	var bytesSum uint64
	for sent < f.count && ctx.Err() == nil {
		now := time.Now().UnixNano()
		k := 0
		for ; k < batch && sent < f.count; k++ {
			if f.v1 {
				r := synthetic(sent, clients, now)
				b := bufs[k][:report.V1Size]
				report.EncodeV1(b, &r, f.key)
				msgs[k].Buffers[0] = b
				bytesSum += r.BytesOut
				sent++
				continue
			}
			seq++
			builder.Start(f.senderID, seq, now)
			for sent < f.count {
				r := synthetic(sent, clients, now)
				if !builder.Add(&r) {
					break
				}
				bytesSum += r.BytesOut
				sent++
			}
			msgs[k].Buffers[0] = append(bufs[k][:0], builder.Finish()...)
		}
		for off := 0; off < k; {
			n, err := pc.WriteBatch(msgs[off:k], 0)
			if err != nil {
				return fmt.Errorf("cannot send: %w", err)
			}
			off += n
		}
		datagrams += k
		if f.rate > 0 {
			if d := time.Duration(float64(sent)/f.rate*float64(time.Second)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
	}
	el := time.Since(start)
	fmt.Fprintf(w, "sent %d reports (%d bytes accounted) in %d datagrams in %.3fs (%.0f reports/s)\n",
		sent, bytesSum, datagrams, el.Seconds(), float64(sent)/el.Seconds())
	return ctx.Err()
}

func synthetic(i int, clients []netip.Addr, now int64) record.Record {
	return record.Record{
		Time: now, Client: clients[i%len(clients)], BytesOut: uint64(1000 + i%100000), Class: uint16(i % 3),
		Retransmits: uint32(i % 5), MSS: 1448, RTT: uint32(1000 + i%50000), RTTVar: 500, Duration: uint64(1000 + i%1000000), Requests: 1,
	}
}
