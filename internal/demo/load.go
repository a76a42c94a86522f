package demo

import (
	"math"
	"math/rand/v2"
	"net/netip"

	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/record"
)

// Class is a traffic class of the synthetic load: its id (as reported), name (as configured),
// share of the requests and size distribution (log-normal around Median bytes).
type Class struct {
	ID     uint16
	Name   string
	Weight int
	Median float64
	Sigma  float64
}

// Classes are the demo's traffic classes: pages and assets, API calls, video segments and
// large downloads.
var Classes = []Class{
	{ID: 0, Name: "web", Weight: 56, Median: 18e3, Sigma: 1.3},
	{ID: 1, Name: "api", Weight: 20, Median: 1.5e3, Sigma: 0.9},
	{ID: 2, Name: "video", Weight: 22, Median: 600e3, Sigma: 0.7},
	{ID: 3, Name: "download", Weight: 2, Median: 8e6, Sigma: 1.2},
}

// client is one synthetic client: its address, the path quality towards it and its router.
type client struct {
	addr   netip.Addr
	rtt    float64 // base RTT, µs
	loss   float64 // probability that a segment is retransmitted
	mss    uint32
	bw     float64 // bytes per µs the client's access link takes
	router int
}

// Load generates requests of many clients whose popularity follows a Zipf law (a few clients
// make most of the requests, most make few), over the world's client networks (a few from
// unrouted space), to the routers' web servers, with per-class sizes, RTTs by distance,
// retransmits from a per-client loss rate, and durations from RTT and bandwidth.
type Load struct {
	w       *World
	rng     *rand.Rand
	clients []client
	zipf    *rand.Zipf
	weights int
}

// NewLoad returns a load over n distinct clients.
func NewLoad(w *World, seed uint64, n int) *Load {
	rng := rand.New(rand.NewPCG(seed, 0x6c6f6164)) // "load"
	l := &Load{w: w, rng: rng, clients: make([]client, n)}
	for _, c := range Classes {
		l.weights += c.Weight
	}
	for i := range l.clients {
		var nw geo.DemoNetwork
		if len(w.Unrouted) > 0 && rng.IntN(40) == 0 {
			nw = w.Unrouted[rng.IntN(len(w.Unrouted))]
		} else {
			nw = w.Networks[rng.IntN(len(w.Networks))]
		}
		c := client{addr: randomIn(rng, nw.Prefix), router: rng.IntN(len(w.Routers))}
		if rng.IntN(10) < 4 && len(w.Routers) > 1 {
			c.router = 0 // the first router carries more
		}
		c.rtt = baseRTT(geo.ContinentOf(nw.Country)) * (0.7 + 0.8*rng.Float64())
		c.loss = math.Min(0.3, 0.002*math.Exp(1.2*rng.NormFloat64())) // log-normal: most clean, a few lossy
		c.mss = []uint32{1460, 1448, 1440, 1380, 1360, 1220}[rng.IntN(6)]
		if c.addr.Is6() {
			c.mss -= 20
		}
		c.bw = 2e6 / 8 / 1e6 * math.Exp(2.5+1.2*rng.NormFloat64()) // ~12 Mbit/s median, in bytes/µs
		l.clients[i] = c
	}
	// s=1.1: heavy-tailed, yet every client appears now and then.
	l.zipf = rand.NewZipf(rng, 1.1, 1, uint64(n-1))
	return l
}

// baseRTT is the RTT from the demo's servers in Europe to a continent, in µs.
func baseRTT(continent [2]byte) float64 {
	switch string(continent[:]) {
	case "EU":
		return 18e3
	case "NA":
		return 95e3
	case "SA":
		return 190e3
	case "AS":
		return 210e3
	case "OC":
		return 280e3
	case "AF":
		return 160e3
	}
	return 120e3
}

// randomIn returns a random host address in p.
func randomIn(rng *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		if rng.IntN(2) == 1 {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	if a == p.Addr() {
		a = a.Next()
	}
	return a
}

// Next fills r with the next request, at time now (Unix ns).
func (l *Load) Next(r *record.Record, now int64) {
	rng := l.rng
	c := &l.clients[l.zipf.Uint64()]
	cls := Classes[0]
	x := rng.IntN(l.weights)
	for _, k := range Classes {
		if x < k.Weight {
			cls = k
			break
		}
		x -= k.Weight
	}
	bytes := uint64(math.Min(cls.Median*math.Exp(cls.Sigma*rng.NormFloat64()), 2e9)) + 180
	packets := (bytes + uint64(c.mss) - 1) / uint64(c.mss)
	rtt := c.rtt * (1 + 0.3*rng.ExpFloat64()*0.3)
	rounds := math.Max(1, math.Log2(float64(packets)/10+1)+1) // slow start
	dur := rtt*rounds + float64(bytes)/c.bw
	rt := l.w.Routers[c.router]
	var server netip.Addr
	for {
		server = rt.Servers[rng.IntN(len(rt.Servers))]
		if server.Is6() == c.addr.Is6() {
			break
		}
	}
	*r = record.Record{
		Time: now, Client: c.addr, Server: server, Proto: 6, ServerPort: 443, Class: cls.ID,
		BytesOut: bytes, MSS: c.mss, Retransmits: uint32(poisson(rng, float64(packets)*c.loss)),
		RTT: uint32(rtt), RTTVar: uint32(rtt / 8), Duration: uint64(dur), Requests: 1,
	}
}

// poisson draws a Poisson variate of mean m (normal approximation for large means).
func poisson(rng *rand.Rand, m float64) uint64 {
	if m <= 0 {
		return 0
	}
	if m > 30 {
		return uint64(math.Max(0, math.Round(m+math.Sqrt(m)*rng.NormFloat64())))
	}
	limit, k, p := math.Exp(-m), uint64(0), rng.Float64()
	for p > limit {
		k++
		p *= rng.Float64()
	}
	return k
}
