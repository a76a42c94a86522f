// Package routers runs the routers of the configuration: one routing.RIB per router, fed from
// the router's MRT files when the daemon starts and from its BGP session (the embedded
// speaker, package bgp) after that. The enrichment reads the tables through Routers; the rib
// commands reach them through the HTTP API (Mount).
package routers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netledger/netledger/internal/hugepage"
	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/routing/bgp"
	"github.com/netledger/netledger/internal/routing/mrt"
)

// Router is a configured router and its table, as the enrichment needs it (enrich.Router takes
// Name, ASN, Networks and RIB as its Table).
type Router struct {
	Name     string
	ASN      uint32
	Networks []netip.Prefix
	// RIB is the router's table; lookups never block and allocate nothing.
	RIB *routing.RIB
}

// Deps are the component's dependencies.
type Deps struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Hugepages, when set, is asked to put the heap on huge pages after each bulk table
	// change: an MRT load (Request), a BGP session's End-of-RIB compaction or replacement
	// table (RequestBGP) (rate-limited and in the background; see package hugepage).
	Hugepages *hugepage.Collapser
}

// router is one router's state.
type router struct {
	cfg RouterConfig
	rib *routing.RIB
	// loadMu serialises MRT loads (at start and through the API).
	loadMu sync.Mutex
	mu     sync.Mutex
	load   LoadStatus
}

// LoadStatus describes a router's last MRT load.
type LoadStatus struct {
	Files []string `json:"files,omitempty"`
	Peer  string   `json:"peer,omitempty"`
	// At is when the load finished; Duration how long it took.
	At       time.Time     `json:"at"`
	Duration time.Duration `json:"duration_ns"`
	Stats    mrt.LoadStats `json:"stats"`
	// Error is the reason of a failed load (the previous table stayed).
	Error string `json:"error,omitempty"`
}

// Component holds every router's table and the BGP speaker of their sessions.
type Component struct {
	routers []*router
	byName  map[string]*router
	speaker *bgp.Component // nil without sessions
	log     *slog.Logger
	metrics *metrics
	started chan struct{} // closed once the start-up MRT loads are done
	// maxUpload bounds the body of an API load (MaxUploadBytes).
	maxUpload int64
	hugepages *hugepage.Collapser
}

// New validates the configuration and builds the (empty) tables and the sessions; nothing is
// read or opened before Run.
func New(routers []RouterConfig, speaker bgp.Config, deps Deps) (*Component, error) {
	if err := Validate(routers, speaker); err != nil {
		return nil, err
	}
	c := &Component{byName: make(map[string]*router), log: deps.Logger, metrics: newMetrics(), started: make(chan struct{}),
		maxUpload: MaxUploadBytes, hugepages: deps.Hugepages}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("component", "routing")
	var neighbors []bgp.Neighbor
	for _, rc := range routers {
		r := &router{cfg: rc, rib: routing.NewRIB()}
		c.routers = append(c.routers, r)
		c.byName[rc.Name] = r
		if rc.BGP != nil {
			n := rc.BGP.neighbor(rc.Name, bulkRIB{r.rib, c.hugepages})
			n.Seeded = len(rc.MRT) > 0
			neighbors = append(neighbors, n)
		}
	}
	if len(neighbors) > 0 {
		var err error
		c.speaker, err = bgp.New(speaker, neighbors, bgp.Deps{Logger: deps.Logger, Registerer: deps.Registerer})
		if err != nil {
			return nil, fmt.Errorf("cannot build bgp speaker: %w", err)
		}
	}
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register routing metrics: %w", err)
		}
	}
	return c, nil
}

// Routers returns the configured routers with their tables, in configuration order. The
// slice is fresh; the RIBs are shared and live as long as the component.
func (c *Component) Routers() []Router {
	out := make([]Router, len(c.routers))
	for i, r := range c.routers {
		out[i] = Router{Name: r.cfg.Name, ASN: r.cfg.ASN, Networks: r.cfg.Networks, RIB: r.rib}
	}
	return out
}

// Speaker returns the BGP speaker (nil when no router has a session).
func (c *Component) Speaker() *bgp.Component { return c.speaker }

// Started is closed once the MRT files of the configuration are loaded (or failed to load).
func (c *Component) Started() <-chan struct{} { return c.started }

// Run loads every router's MRT files, then runs the BGP sessions until ctx is cancelled. A
// file that cannot be loaded is logged and counted, and leaves that router's table empty: it
// does not stop the daemon. Only a failure of the speaker to listen is an error.
func (c *Component) Run(ctx context.Context) error {
	for _, r := range c.routers {
		if len(r.cfg.MRT) == 0 || ctx.Err() != nil {
			continue
		}
		peer, _ := mrt.ParsePeerSelector(r.cfg.MRTPeer)
		if _, err := c.loadFiles(r, peer, r.cfg.MRT...); err != nil {
			c.log.Error("cannot load the router's mrt files", "router", r.cfg.Name, "error", err)
		}
	}
	close(c.started)
	if c.speaker == nil {
		<-ctx.Done()
		return nil
	}
	return c.speaker.Run(ctx)
}

// ErrUnknownRouter is returned for a router name that is not configured.
var ErrUnknownRouter = errors.New("no such router")

// ErrSessionFed is returned when loading files into a router fed by a BGP session.
var ErrSessionFed = errors.New("the router's table is fed by its BGP session")

// LoadFiles replaces a router's table with the routes of MRT files, applied in order (see
// mrt.Loader), swapping the new table in atomically; on error the old table stays. Routers
// with a BGP session refuse (ErrSessionFed): their session is the table's only writer.
func (c *Component) LoadFiles(name string, peer mrt.PeerSelector, files ...string) (LoadStatus, error) {
	r, err := c.loadable(name)
	if err != nil {
		return LoadStatus{}, err
	}
	return c.loadFiles(r, peer, files...)
}

// LoadReaders is LoadFiles over open MRT streams (the API's uploads): next returns the name and
// reader of the next file, or io.EOF after the last.
func (c *Component) LoadReaders(name string, peer mrt.PeerSelector, next func() (string, *mrt.Reader, error)) (LoadStatus, error) {
	r, err := c.loadable(name)
	if err != nil {
		return LoadStatus{}, err
	}
	var files []string
	return c.load(r, peer, &files, func(l *mrt.Loader, u routing.Updater) error {
		for {
			fname, rd, err := next()
			if err != nil {
				return ignoreEOF(err)
			}
			files = append(files, fname)
			if err := l.Apply(rd, u); err != nil {
				return fmt.Errorf("%s: %w", fname, err)
			}
		}
	})
}

func (c *Component) loadable(name string) (*router, error) {
	r, ok := c.byName[name]
	if !ok {
		return nil, ErrUnknownRouter
	}
	if r.cfg.BGP != nil {
		return nil, ErrSessionFed
	}
	return r, nil
}

func (c *Component) loadFiles(r *router, peer mrt.PeerSelector, files ...string) (LoadStatus, error) {
	names := files
	return c.load(r, peer, &names, func(l *mrt.Loader, u routing.Updater) error {
		for _, f := range files {
			if err := l.ApplyFile(f, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// load builds r's replacement table with fn and records the outcome.
func (c *Component) load(r *router, peer mrt.PeerSelector, files *[]string, fn func(*mrt.Loader, routing.Updater) error) (LoadStatus, error) {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	start := time.Now()
	l := &mrt.Loader{Peer: peer}
	err := l.Load(r.rib, func(u routing.Updater) error { return fn(l, u) })
	st := LoadStatus{Files: *files, Peer: peer.String(), At: time.Now(), Duration: time.Since(start), Stats: l.Stats()}
	result := "ok"
	if err != nil {
		st.Error = err.Error()
		result = "error"
	}
	c.metrics.loads.WithLabelValues(r.cfg.Name, result).Inc()
	r.mu.Lock()
	r.load = st
	r.mu.Unlock()
	if err == nil {
		c.hugepages.Request()
		v4, v6 := r.rib.Len()
		c.log.Info("router table loaded from mrt files", "router", r.cfg.Name, "files", len(st.Files),
			"ipv4", v4, "ipv6", v6, "duration", st.Duration.Round(time.Millisecond))
	}
	return st, err
}

// Status is one router's state, as `netledger rib status` shows it.
type Status struct {
	Name     string         `json:"name"`
	ASN      uint32         `json:"asn"`
	Networks []netip.Prefix `json:"networks"`
	IPv4     int            `json:"ipv4_prefixes"`
	IPv6     int            `json:"ipv6_prefixes"`
	// Updated is when the table readers see was published.
	Updated time.Time `json:"updated"`
	// AttrSets and Paths are the interned attribute sets and AS paths.
	AttrSets int `json:"attribute_sets"`
	Paths    int `json:"as_paths"`
	// Load is the last MRT load (nil: none).
	Load *LoadStatus `json:"mrt_load,omitempty"`
	// Session is the BGP session (nil: none).
	Session *SessionStatus `json:"bgp_session,omitempty"`
}

// SessionStatus is a router's BGP session state.
type SessionStatus struct {
	Neighbor netip.Addr `json:"neighbor"`
	PeerASN  uint32     `json:"peer_asn"`
	Passive  bool       `json:"passive"`
	State    string     `json:"state"`
	Since    time.Time  `json:"since"`
}

// Status returns every router's state, in configuration order.
func (c *Component) Status() []Status {
	sessions := make(map[string]bgp.SessionStatus)
	if c.speaker != nil {
		for _, s := range c.speaker.Status() {
			sessions[s.Router] = s
		}
	}
	out := make([]Status, 0, len(c.routers))
	for _, r := range c.routers {
		v4, v6 := r.rib.Len()
		rs := r.rib.Stats()
		st := Status{Name: r.cfg.Name, ASN: r.cfg.ASN, Networks: r.cfg.Networks, IPv4: v4, IPv6: v6,
			Updated: r.rib.Updated(), AttrSets: rs.Attrs, Paths: rs.Paths}
		r.mu.Lock()
		if !r.load.At.IsZero() {
			l := r.load
			st.Load = &l
		}
		r.mu.Unlock()
		if b := r.cfg.BGP; b != nil {
			s := sessions[r.cfg.Name]
			st.Session = &SessionStatus{Neighbor: b.Neighbor, PeerASN: b.PeerASN, Passive: b.Passive,
				State: s.State.String(), Since: s.Since}
		}
		out = append(out, st)
	}
	return out
}

// Route is the answer of Lookup for one address.
type Route struct {
	Address netip.Addr `json:"address"`
	// Found is false when no prefix of the table holds the address.
	Found  bool         `json:"found"`
	Prefix netip.Prefix `json:"prefix,omitzero"`
	// Path is the AS path in bgpdump's notation ("3356 1299 {64512,64513}").
	Path string `json:"as_path"`
	// PeerAS and OriginAS are the first and last AS of the path, or the router's own AS for a
	// route with an empty path (as the enrichment counts it); 0 when unknown.
	PeerAS   uint32     `json:"peer_as"`
	OriginAS uint32     `json:"origin_as"`
	NextHop  netip.Addr `json:"next_hop,omitzero"`
}

// Lookup returns the longest-match route of each address in a router's table.
func (c *Component) Lookup(name string, addrs ...netip.Addr) ([]Route, error) {
	r, ok := c.byName[name]
	if !ok {
		return nil, ErrUnknownRouter
	}
	out := make([]Route, len(addrs))
	for i, a := range addrs {
		out[i] = LookupRoute(r.rib, r.cfg.ASN, a)
	}
	return out, nil
}

// LookupRoute looks a up in rib; asn is the router's own AS (for routes with an empty path).
func LookupRoute(rib *routing.RIB, asn uint32, a netip.Addr) Route {
	rt := Route{Address: a}
	bits, at, ok := rib.Lookup(a)
	if !ok {
		return rt
	}
	rt.Found, rt.Prefix, rt.Path, rt.NextHop = true, routing.MatchedPrefix(a, bits), at.String(), at.NextHop
	var has bool
	if rt.PeerAS, has = at.PeerAS(); !has && at.PathLen() == 0 {
		rt.PeerAS = asn
	}
	if rt.OriginAS, has = at.OriginAS(); !has && at.PathLen() == 0 {
		rt.OriginAS = asn
	}
	return rt
}

// bulkRIB is the RIB a BGP session writes: after the bulk changes (a replacement table swapped
// in, the compaction at End-of-RIB) it asks for the heap to be put on huge pages (if
// hugepages.bgp is set).
type bulkRIB struct {
	*routing.RIB
	hugepages *hugepage.Collapser
}

// Load implements bgp.Loader.
func (b bulkRIB) Load(fn func(u routing.Updater) error) error {
	err := b.RIB.Load(fn)
	if err == nil {
		b.hugepages.RequestBGP()
	}
	return err
}

// Compact implements bgp.Compacter.
func (b bulkRIB) Compact() {
	b.RIB.Compact()
	b.hugepages.RequestBGP()
}
