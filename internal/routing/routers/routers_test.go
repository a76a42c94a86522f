package routers

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netledger/netledger/internal/hugepage"
	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/routing/bgp"
	"github.com/netledger/netledger/internal/routing/mrt"
	"github.com/netledger/netledger/internal/testenv"
)

func TestValidate(t *testing.T) {
	nets := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	session := &SessionConfig{Neighbor: netip.MustParseAddr("192.0.2.1"), PeerASN: 64500}
	speaker := bgp.DefaultConfig()
	for _, tc := range []struct {
		name    string
		routers []RouterConfig
		speaker bgp.Config
		err     string // "" = valid
	}{
		{"none", nil, speaker, ""},
		{"one router without networks", []RouterConfig{{Name: "a"}}, speaker, ""},
		{"no name", []RouterConfig{{ASN: 1}}, speaker, "no name"},
		{"twice", []RouterConfig{{Name: "a", Networks: nets}, {Name: "a", Networks: nets}}, speaker, "twice"},
		{"several, one without networks", []RouterConfig{{Name: "a", Networks: nets}, {Name: "b"}}, speaker, "serves no networks"},
		{"bad mrt_peer", []RouterConfig{{Name: "a", MRT: []string{"x"}, MRTPeer: "nobody"}}, speaker, "mrt_peer"},
		{"mrt_peer without files", []RouterConfig{{Name: "a", MRTPeer: "AS1"}}, speaker, "without mrt files"},
		{"session", []RouterConfig{{Name: "a", BGP: session}}, speaker, ""},
		{"session without peer asn", []RouterConfig{{Name: "a", BGP: &SessionConfig{Neighbor: session.Neighbor}}}, speaker, "no peer ASN"},
		{"session without neighbor", []RouterConfig{{Name: "a", BGP: &SessionConfig{PeerASN: 1}}}, speaker, "no address"},
		{"same neighbor twice", []RouterConfig{{Name: "a", Networks: nets, BGP: session}, {Name: "b", Networks: nets, BGP: session}}, speaker, "routers \"a\" and \"b\""},
		{"session, bad speaker", []RouterConfig{{Name: "a", BGP: session}}, bgp.Config{}, "router_id"},
		{"no session, speaker unused", []RouterConfig{{Name: "a"}}, bgp.Config{}, ""},
	} {
		err := Validate(tc.routers, tc.speaker)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.err)
		}
	}
}

// testComponent runs a component with a router loaded from the 2002 full table (one peer), one
// with a BGP session, and one without a feed; it returns the component and its API's URL.
func testComponent(t *testing.T) (*Component, *prometheus.Registry, string) {
	t.Helper()
	bview := testenv.Testdata(t, "mrt/ripe-bgpdump/test_data/bview.20020722.2337.gz")
	speaker := bgp.DefaultConfig()
	speaker.Listen = "127.0.0.1:0"
	reg := prometheus.NewRegistry()
	hp, err := hugepage.New(hugepage.Config{Enable: true, MinInterval: time.Hour, MaxEmpty: hugepage.DefaultMaxEmpty},
		hugepage.Deps{Logger: slog.New(slog.DiscardHandler), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New([]RouterConfig{
		{Name: "dump", ASN: 64500, Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, MRT: []string{bview}, MRTPeer: "AS1853"},
		{Name: "bgp", ASN: 64501, Networks: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
			BGP: &SessionConfig{Neighbor: netip.MustParseAddr("127.0.0.9"), PeerASN: 65009, Passive: true}},
		{Name: "empty", ASN: 64502, Networks: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
	}, speaker, Deps{Logger: slog.New(slog.DiscardHandler), Registerer: reg, Hugepages: hp})
	if err != nil {
		t.Fatal(err)
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
	select {
	case <-c.Started():
	case <-time.After(time.Minute):
		t.Fatal("mrt files not loaded within a minute")
	}
	mux := http.NewServeMux()
	c.Mount(mux.Handle)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return c, reg, srv.URL
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

// postFiles uploads files as `netledger rib load` does and decodes the answer.
func postFiles(t *testing.T, url string, out any, files ...string) int {
	t.Helper()
	body, contentType := multipartFiles(t, files...)
	resp, err := http.Post(url, contentType, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp.StatusCode
}

// multipartFiles returns files as the body of a load and its content type.
func multipartFiles(t *testing.T, files ...string) (*bytes.Buffer, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		w, _ := mw.CreateFormFile("mrt", filepath.Base(f))
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	mw.Close()
	return &body, mw.FormDataContentType()
}

func TestComponent(t *testing.T) {
	c, reg, base := testComponent(t)
	dir := testenv.Testdata(t, "mrt/ripe-bgpdump/test_data")

	// The start-up load matches the dump read directly, one peer.
	want := routing.NewRIB()
	if _, err := mrt.LoadFiles(want, mrt.PeerSelector{ASN: 1853}, filepath.Join(dir, "bview.20020722.2337.gz")); err != nil {
		t.Fatal(err)
	}
	wantV4, _ := want.Len()
	rs := c.Routers()
	if len(rs) != 3 || rs[0].Name != "dump" || rs[0].ASN != 64500 || rs[1].RIB == nil || len(rs[2].Networks) != 1 {
		t.Fatalf("Routers() = %+v", rs)
	}
	if v4, v6 := rs[0].RIB.Len(); v4 != wantV4 || v6 != 0 || wantV4 < 100000 {
		t.Errorf("router dump: %d+%d prefixes, want %d+0", v4, v6, wantV4)
	}
	// The start-up load asked for the heap on huge pages once (in the background).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		n := counterValue(t, reg, "netledger_hugepage_collapses_total")
		if n == 1 {
			break
		}
		if n > 1 || time.Now().After(deadline) {
			t.Fatalf("huge page collapses after the start-up load: %v, want 1", n)
		}
	}

	var st []Status
	if code := getJSON(t, base+StatusPath, &st); code != 200 || len(st) != 3 {
		t.Fatalf("status: %d %+v", code, st)
	}
	if s := st[0]; s.IPv4 != wantV4 || s.Load == nil || s.Load.Error != "" || s.Load.Peer != "AS1853" || s.Session != nil || s.Paths == 0 {
		t.Errorf("status of dump: %+v", s)
	}
	if s := st[1]; s.Session == nil || s.Session.State != "idle" || s.Session.PeerASN != 65009 || s.Load != nil {
		t.Errorf("status of bgp: %+v", s)
	}

	var routes []Route
	if code := getJSON(t, base+"/api/v1/routing/routers/dump/lookup?address=193.0.0.1&address=::ffff:193.0.0.1&address=10.0.0.1", &routes); code != 200 || len(routes) != 3 {
		t.Fatalf("lookup: %d %+v", code, routes)
	}
	wantRoute := Route{Address: netip.MustParseAddr("193.0.0.1"), Found: true, Prefix: netip.MustParsePrefix("193.0.0.0/21"),
		Path: "1853 20965 1103 3333", PeerAS: 1853, OriginAS: 3333, NextHop: netip.MustParseAddr("193.203.0.1")}
	if routes[0] != wantRoute {
		t.Errorf("lookup 193.0.0.1 = %+v, want %+v", routes[0], wantRoute)
	}
	if !routes[1].Found || routes[1].Prefix != wantRoute.Prefix || routes[2].Found {
		t.Errorf("lookup mapped/unrouted = %+v", routes[1:])
	}

	var e apiError
	for _, tc := range []struct {
		url  string
		code int
	}{
		{base + "/api/v1/routing/routers/nope/lookup?address=10.0.0.1", 404},
		{base + "/api/v1/routing/routers/dump/lookup?address=10.0.0.300", 400},
	} {
		if code := getJSON(t, tc.url, &e); code != tc.code || e.Error == "" {
			t.Errorf("GET %s = %d %q, want %d", tc.url, code, e.Error, tc.code)
		}
	}

	// Loading through the API: an IPv6 ADD-PATH dump into the router without a feed.
	var res LoadResult
	v6file := filepath.Join(dir, "bview.ipv6_unicast_add_path.gz")
	if code := postFiles(t, base+"/api/v1/routing/routers/empty/load", &res, v6file); code != 200 || res.Router.IPv6 == 0 || res.Load.Stats.Announced == 0 {
		t.Fatalf("load: %d %+v", code, res)
	}
	direct := routing.NewRIB()
	mrt.LoadFiles(direct, mrt.PeerSelector{}, v6file)
	if _, v6 := direct.Len(); res.Router.IPv6 != v6 {
		t.Errorf("loaded %d IPv6 prefixes, reading the file directly gives %d", res.Router.IPv6, v6)
	}
	// A truncated file: 422 naming the offset, the table stays.
	raw, err := os.ReadFile(filepath.Join(testenv.Testdata(t, "peers/bgp"), "sample-gobgpd-table-dump-v2.mrt"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.mrt")
	os.WriteFile(cut, raw[:len(raw)-3], 0o644)
	if code := postFiles(t, base+"/api/v1/routing/routers/empty/load", &e, cut); code != 422 || !strings.Contains(e.Error, "cut.mrt") || !strings.Contains(e.Error, "offset") {
		t.Errorf("truncated load: %d %q", code, e.Error)
	}
	if _, v6 := c.Routers()[2].RIB.Len(); v6 != res.Router.IPv6 {
		t.Errorf("failed load changed the table: %d IPv6 prefixes, want %d", v6, res.Router.IPv6)
	}
	if code := postFiles(t, base+"/api/v1/routing/routers/bgp/load", &e, v6file); code != 409 {
		t.Errorf("load into a BGP-fed router: %d %q", code, e.Error)
	}
	if code := postFiles(t, base+"/api/v1/routing/routers/nope/load", &e, v6file); code != 404 {
		t.Errorf("load into an unknown router: %d %q", code, e.Error)
	}
	if code := postFiles(t, base+"/api/v1/routing/routers/empty/load?peer=AS7", &e, v6file); code != 422 || !strings.Contains(e.Error, "AS7") {
		t.Errorf("load of an absent peer: %d %q", code, e.Error)
	}

	if n := testutil.ToFloat64(c.metrics.loads.WithLabelValues("empty", "error")); n != 2 {
		t.Errorf("failed loads counted %v, want 2", n)
	}

	// Loads are taken only from loopback, and only up to maxUpload bytes; neither refusal
	// touches the table. (Served directly: the handler reads maxUpload.)
	v6before := res.Router.IPv6
	load := func(remote, file string, local ...string) (int, apiError) {
		body, contentType := multipartFiles(t, file)
		req := httptest.NewRequest(http.MethodPost, "/api/v1/routing/routers/empty/load", body)
		if len(local) > 0 {
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(local[0]))))
		}
		req.Header.Set("Content-Type", contentType)
		req.SetPathValue("router", "empty")
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		c.serveLoad(rec, req)
		var e apiError
		json.Unmarshal(rec.Body.Bytes(), &e)
		return rec.Code, e
	}
	for _, remote := range []string{"192.0.2.7:4242", "[2001:db8::7]:4242", "[::ffff:192.0.2.7]:4242"} {
		if code, e := load(remote, v6file, "192.0.2.1:8790"); code != http.StatusForbidden || e.Error == "" {
			t.Errorf("load from %s: %d %q, want 403", remote, code, e.Error)
		}
	}
	if code, e := load("192.0.2.7:4242", v6file); code != http.StatusForbidden {
		t.Errorf("load from 192.0.2.7 without a local address: %d %q, want 403", code, e.Error)
	}
	if code, e := load("192.0.2.1:4242", v6file, "192.0.2.1:8790"); code != http.StatusOK { // this host's LAN address
		t.Errorf("load from the address the API listens on: %d %q, want 200", code, e.Error)
	}
	big := filepath.Join(dir, "updates.20100722.2015.gz") // 39 kB
	c.maxUpload = 20000
	if code, e := load("127.0.0.1:4242", big); code != http.StatusRequestEntityTooLarge || e.Error == "" {
		t.Errorf("load of more than maxUpload: %d %q, want 413", code, e.Error)
	}
	c.maxUpload = MaxUploadBytes
	empty := filepath.Join(t.TempDir(), "empty.mrt")
	os.WriteFile(empty, nil, 0o644)
	if code, e := load("127.0.0.1:4242", empty); code != http.StatusUnprocessableEntity || !strings.Contains(e.Error, "no route") {
		t.Errorf("load of an empty file: %d %q, want 422", code, e.Error)
	}
	if code, e := load("[::ffff:127.0.0.1]:4242", v6file); code != http.StatusOK {
		t.Errorf("load from mapped loopback: %d %q, want 200", code, e.Error)
	}
	if _, v6 := c.Routers()[2].RIB.Len(); v6 != v6before {
		t.Errorf("refused loads changed the table: %d IPv6 prefixes, want %d", v6, v6before)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
	}
	for _, name := range []string{"netledger_routing_prefixes", "netledger_routing_table_updated_timestamp_seconds",
		"netledger_routing_mrt_loads_total", "netledger_bgp_session_state"} {
		if !found[name] {
			t.Errorf("metric %s not gathered", name)
		}
	}
}

// counterValue returns the value of the unlabelled counter name from reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
