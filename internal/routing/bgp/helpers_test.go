package bgp

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/netledger/netledger/internal/routing"
)

// mapRIB is a naive routing.Updater (plus Walker and Len) for tests.
type mapRIB struct {
	mu     sync.Mutex
	routes map[route]routing.Attrs
	clears int
}

func newMapRIB() *mapRIB { return &mapRIB{routes: make(map[route]routing.Attrs)} }

func (r *mapRIB) Announce(p netip.Prefix, id uint32, a routing.Attrs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[route{p, id}] = a
}

func (r *mapRIB) Withdraw(p netip.Prefix, id uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.routes, route{p, id})
}

func (r *mapRIB) Clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes = make(map[route]routing.Attrs)
	r.clears++
}

func (r *mapRIB) Walk(fn func(netip.Prefix, uint32) bool) {
	r.mu.Lock()
	keys := make([]route, 0, len(r.routes))
	for k := range r.routes {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	for _, k := range keys {
		if !fn(k.Prefix, k.PathID) {
			return
		}
	}
}

func (r *mapRIB) Len() (v4, v6 int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.routes {
		if k.Prefix.Addr().Is4() {
			v4++
		} else {
			v6++
		}
	}
	return v4, v6
}

// dump renders the table as sorted lines "prefix id path nexthop".
func (r *mapRIB) dump() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := make([]string, 0, len(r.routes))
	for k, a := range r.routes {
		lines = append(lines, fmt.Sprintf("%v %d %s %v", k.Prefix, k.PathID, pathString(a.Path), a.NextHop))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func (r *mapRIB) get(p string, id uint32) (routing.Attrs, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.routes[route{netip.MustParsePrefix(p), id}]
	return a, ok
}

func (r *mapRIB) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.routes)
}

func pathString(segs []routing.Segment) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte(' ')
		}
		var asns []string
		for _, a := range s.ASNs {
			asns = append(asns, fmt.Sprint(a))
		}
		switch s.Type {
		case routing.SegmentSet:
			b.WriteString("{" + strings.Join(asns, ",") + "}")
		case routing.SegmentConfedSequence:
			b.WriteString("(" + strings.Join(asns, " ") + ")")
		case routing.SegmentConfedSet:
			b.WriteString("[" + strings.Join(asns, ",") + "]")
		default:
			b.WriteString(strings.Join(asns, " "))
		}
	}
	return b.String()
}

// wait bounds the waits for a speaker to get somewhere: it only catches a broken test (the
// waits return as soon as their condition holds), so it is generous — a race-enabled run on
// a loaded CI machine can take seconds where an idle one takes milliseconds.
const wait = 60 * time.Second

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.RouterID = "10.0.0.1"
	cfg.LocalASN = 65001
	cfg.ConnectRetry = 100 * time.Millisecond
	cfg.ConnectRetryMax = 500 * time.Millisecond
	cfg.GraceTime = 300 * time.Millisecond
	return cfg
}

// startSpeaker runs a speaker until the test ends and returns its listen address.
func startSpeaker(t *testing.T, cfg Config, ns ...Neighbor) (*Component, string, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(cfg, ns, Deps{Registerer: reg, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	addr := c.Addr(ctx)
	if addr == nil {
		t.Fatal("speaker did not listen")
	}
	return c, addr.String(), reg
}

// scripted is a BGP peer driven message by message by a test.
type scripted struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func newScripted(t *testing.T, nc net.Conn) *scripted {
	t.Cleanup(func() { nc.Close() })
	return &scripted{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func dialScripted(t *testing.T, addr string) *scripted {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return newScripted(t, nc)
}

func (s *scripted) send(m *bgp.BGPMessage, opts ...*bgp.MarshallingOption) {
	s.t.Helper()
	b, err := m.Serialize(opts...)
	if err != nil {
		s.t.Fatalf("serialize: %v", err)
	}
	s.sendRaw(b)
}

func (s *scripted) sendRaw(b []byte) {
	s.t.Helper()
	if _, err := s.nc.Write(b); err != nil {
		s.t.Fatalf("write: %v", err)
	}
}

// recv returns the next message, or nil and the error.
func (s *scripted) recv(timeout time.Duration) (*bgp.BGPMessage, error) {
	s.nc.SetReadDeadline(time.Now().Add(timeout))
	hdr := make([]byte, 19)
	if _, err := io.ReadFull(s.r, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint16(hdr[16:18])
	body := make([]byte, int(n)-19)
	if _, err := io.ReadFull(s.r, body); err != nil {
		return nil, err
	}
	return bgp.ParseBGPMessage(append(hdr, body...))
}

// expect reads messages, skipping KEEPALIVEs unless asked for, until one of type typ.
func (s *scripted) expect(typ uint8) *bgp.BGPMessage {
	s.t.Helper()
	for {
		m, err := s.recv(wait)
		if err != nil {
			s.t.Fatalf("waiting for message type %d: %v", typ, err)
		}
		if m.Header.Type == typ {
			return m
		}
		if m.Header.Type != bgp.BGP_MSG_KEEPALIVE {
			s.t.Fatalf("got message %#v, want type %d", m.Body, typ)
		}
	}
}

func (s *scripted) expectNotification(code, sub uint8) {
	s.t.Helper()
	n := s.expect(bgp.BGP_MSG_NOTIFICATION).Body.(*bgp.BGPNotification)
	if n.ErrorCode != code || n.ErrorSubcode != sub {
		s.t.Fatalf("notification %d/%d, want %d/%d", n.ErrorCode, n.ErrorSubcode, code, sub)
	}
}

type openSpec struct {
	as       uint32
	hold     uint16
	id       string
	version  uint8
	no4byte  bool
	addPath  bool
	families []bgp.Family
	noMPCaps bool
}

func (o openSpec) msg() *bgp.BGPMessage {
	as2 := uint16(bgp.AS_TRANS)
	if o.as <= 0xffff {
		as2 = uint16(o.as)
	}
	var caps []bgp.ParameterCapabilityInterface
	fams := o.families
	if fams == nil {
		fams = []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC}
	}
	if !o.noMPCaps {
		for _, f := range fams {
			caps = append(caps, bgp.NewCapMultiProtocol(f))
		}
	}
	if !o.no4byte {
		caps = append(caps, bgp.NewCapFourOctetASNumber(o.as))
	}
	if o.addPath {
		var tuples []*bgp.CapAddPathTuple
		for _, f := range fams {
			tuples = append(tuples, bgp.NewCapAddPathTuple(f, bgp.BGP_ADD_PATH_SEND))
		}
		caps = append(caps, bgp.NewCapAddPath(tuples))
	}
	m, err := bgp.NewBGPOpenMessage(as2, o.hold, netip.MustParseAddr(o.id),
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		panic(err)
	}
	if o.version != 0 {
		m.Body.(*bgp.BGPOpen).Version = o.version
	}
	return m
}

// establish runs the OPEN/KEEPALIVE exchange from the neighbor's side.
func (s *scripted) establish(o openSpec) *bgp.BGPOpen {
	s.t.Helper()
	open := s.expect(bgp.BGP_MSG_OPEN).Body.(*bgp.BGPOpen)
	s.send(o.msg())
	s.expect(bgp.BGP_MSG_KEEPALIVE)
	s.send(bgp.NewBGPKeepAliveMessage())
	return open
}

// updateMsg builds an UPDATE announcing v4 prefixes (NLRI field) and v6 prefixes (MP_REACH).
func updateMsg(path []uint32, nh4 string, v4 []string, nh6 string, v6 []string, extra ...bgp.PathAttributeInterface) *bgp.BGPMessage {
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(0),
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, path)}),
	}
	var nlri []bgp.PathNLRI
	if len(v4) > 0 {
		nh, _ := bgp.NewPathAttributeNextHop(netip.MustParseAddr(nh4))
		attrs = append(attrs, nh)
		for _, p := range v4 {
			n, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix(p))
			nlri = append(nlri, bgp.PathNLRI{NLRI: n})
		}
	}
	if len(v6) > 0 {
		var mp []bgp.PathNLRI
		for _, p := range v6 {
			n, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix(p))
			mp = append(mp, bgp.PathNLRI{NLRI: n})
		}
		reach, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, mp, netip.MustParseAddr(nh6))
		if err != nil {
			panic(err)
		}
		attrs = append(attrs, reach)
	}
	attrs = append(attrs, extra...)
	return bgp.NewBGPUpdateMessage(nil, attrs, nlri)
}

func withdrawMsg(v4 []string, v6 []string) *bgp.BGPMessage {
	var w []bgp.PathNLRI
	for _, p := range v4 {
		n, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix(p))
		w = append(w, bgp.PathNLRI{NLRI: n})
	}
	var attrs []bgp.PathAttributeInterface
	if len(v6) > 0 {
		var mp []bgp.PathNLRI
		for _, p := range v6 {
			n, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix(p))
			mp = append(mp, bgp.PathNLRI{NLRI: n})
		}
		un, _ := bgp.NewPathAttributeMpUnreachNLRI(bgp.RF_IPv6_UC, mp)
		attrs = append(attrs, un)
	}
	return bgp.NewBGPUpdateMessage(w, attrs, nil)
}

// total sums every series of a metric vector.
func total(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 100)
	go func() { c.Collect(ch); close(ch) }()
	sum := 0.0
	for m := range ch {
		var pb dto.Metric
		_ = m.Write(&pb)
		switch {
		case pb.Counter != nil:
			sum += pb.Counter.GetValue()
		case pb.Gauge != nil:
			sum += pb.Gauge.GetValue()
		}
	}
	return sum
}

// loaderRIB is a mapRIB that cannot be walked but can build and swap a replacement (Loader).
type loaderRIB struct{ m *mapRIB }

func (r loaderRIB) Announce(p netip.Prefix, id uint32, a routing.Attrs) { r.m.Announce(p, id, a) }
func (r loaderRIB) Withdraw(p netip.Prefix, id uint32)                  { r.m.Withdraw(p, id) }
func (r loaderRIB) Clear()                                              { r.m.Clear() }

func (r loaderRIB) Load(fn func(routing.Updater) error) error {
	fresh := newMapRIB()
	if err := fn(fresh); err != nil {
		return err
	}
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	r.m.routes = fresh.routes
	return nil
}
