package mrt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/testenv"
)

func TestParsePeerSelector(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"", "", false},
		{"193.203.0.1", "193.203.0.1", false},
		{"::ffff:193.203.0.1", "193.203.0.1", false},
		{"2001:db8::1", "2001:db8::1", false},
		{"3356", "AS3356", false},
		{"as3356", "AS3356", false},
		{"AS0", "", true},
		{"router1", "", true},
		{"4294967296", "", true},
	} {
		s, err := ParsePeerSelector(tc.in)
		if (err != nil) != tc.err || (err == nil && s.String() != tc.want) {
			t.Errorf("ParsePeerSelector(%q) = %q, %v; want %q (error %v)", tc.in, s, err, tc.want, tc.err)
		}
	}
}

// oraclePath is one path of the naive table: a deep copy of the attributes and the order in
// which its (peer, path ID) was first seen.
type oraclePath struct {
	order int
	attrs routing.Attrs
}

func deepCopy(a *routing.Attrs) routing.Attrs {
	c := *a
	c.Path = nil
	for _, s := range a.Path {
		c.Path = append(c.Path, routing.Segment{Type: s.Type, ASNs: slices.Clone(s.ASNs)})
	}
	c.Communities = slices.Clone(a.Communities)
	c.LargeCommunities = slices.Clone(a.LargeCommunities)
	return c
}

func attrsKey(a *routing.Attrs) string {
	return fmt.Sprintf("%s|%s|%d|%v:%d|%v:%d|%v|%v", a, a.NextHop, a.Origin, a.HasMED, a.MED,
		a.HasLocalPref, a.LocalPref, a.Communities, a.LargeCommunities)
}

// naiveLoad applies the files' routes to maps, the obvious way, and returns every prefix's
// best path by the documented rule (Attrs.Better, ties to the path seen first).
func naiveLoad(t *testing.T, peer PeerSelector, files ...string) map[netip.Prefix]string {
	t.Helper()
	order := make(map[pathKey]int)
	table := make(map[netip.Prefix]map[pathKey]oraclePath)
	for _, name := range files {
		r, err := Open(name)
		if err != nil {
			t.Fatal(err)
		}
		err = r.Routes(func(rt *Route) error {
			if rt.Kind == State && rt.OldState == 6 && rt.NewState != 6 && peer.match(&rt.Peer) {
				for _, paths := range table { // the session dropped: all its routes go
					for k := range paths {
						if k.peer == rt.Peer.Addr {
							delete(paths, k)
						}
					}
				}
			}
			if rt.Kind == State || !peer.match(&rt.Peer) {
				return nil
			}
			k := pathKey{rt.Peer.Addr, rt.PathID}
			if _, ok := order[k]; !ok {
				order[k] = len(order)
			}
			p := rt.Prefix.Masked()
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			if rt.Kind == Withdraw {
				delete(table[p], k)
				return nil
			}
			if table[p] == nil {
				table[p] = make(map[pathKey]oraclePath)
			}
			table[p][k] = oraclePath{order[k], deepCopy(rt.Attrs)}
			return nil
		})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	best := make(map[netip.Prefix]string, len(table))
	for p, paths := range table {
		var b *oraclePath
		for _, c := range paths {
			if b == nil || c.attrs.Better(&b.attrs) || (!b.attrs.Better(&c.attrs) && c.order < b.order) {
				b = &c
			}
		}
		if b != nil {
			best[p] = attrsKey(&b.attrs)
		}
	}
	return best
}

// TestLoaderOracle loads real dumps and update files into a RIB and compares every prefix's
// route with the naive table: every peer (best path), one peer, ADD-PATH dumps, updates
// applied after a dump.
func TestLoaderOracle(t *testing.T) {
	dir := testenv.Testdata(t, "mrt/ripe-bgpdump/test_data")
	f := func(name string) string { return filepath.Join(dir, name) }
	peers := testenv.Testdata(t, "peers/bgp")
	for _, tc := range []struct {
		name  string
		peer  string
		files []string
		paths int // distinct (peer, path ID) pairs at least
	}{
		{"bview one peer", "193.203.0.65", []string{f("bview.20020722.2337.gz")}, 1},
		{"bview one AS", "AS1853", []string{f("bview.20020722.2337.gz")}, 1},
		{"bview then updates", "", []string{f("bview.20020722.2337.gz"), f("updates.20020722.2238.gz")}, 36},
		{"updates 2-byte AS", "", []string{f("updates.20071015.1505.gz"), f("updates.20100722.2015.gz")}, 2},
		{"add-path ipv4", "", []string{f("bview.ipv4_unicast_add_path.gz")}, 2},
		{"add-path ipv6", "", []string{f("bview.ipv6_unicast_add_path.gz")}, 2},
		{"bird dump, gobgp updates", "", []string{filepath.Join(peers, "sample-bird-table-dump-v2.mrt"),
			filepath.Join(peers, "sample-gobgpd-bgp4mp-updates.mrt")}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer, err := ParsePeerSelector(tc.peer)
			if err != nil {
				t.Fatal(err)
			}
			want := naiveLoad(t, peer, tc.files...)
			rib := routing.NewRIB()
			st, err := LoadFiles(rib, peer, tc.files...)
			if err != nil {
				t.Fatal(err)
			}
			if st.Paths < tc.paths {
				t.Errorf("%d paths, want at least %d", st.Paths, tc.paths)
			}
			v4, v6 := rib.Len()
			if v4+v6 != len(want) {
				t.Errorf("RIB holds %d+%d prefixes, naive table %d", v4, v6, len(want))
			}
			if len(want) == 0 {
				t.Fatal("naive table empty: the test proves nothing")
			}
			bad := 0
			for p, w := range want {
				a, ok := rib.Get(p)
				if got := "<none>"; !ok || attrsKey(a) != w {
					if ok {
						got = attrsKey(a)
					}
					if bad++; bad <= 5 {
						t.Errorf("%s: got %s, want %s", p, got, w)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d prefixes differ", bad, len(want))
			}
		})
	}
}

// TestLoadFilesErrors: a truncated file keeps the old table and names the offset; a peer
// absent from the files is an error too.
func TestLoadFilesErrors(t *testing.T) {
	bview := testenv.Testdata(t, "mrt/ripe-bgpdump/test_data/bview.20020722.2337.gz")
	r, err := Open(bview)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r.br)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.mrt")
	if err := os.WriteFile(cut, raw[:len(raw)/2+7], 0o644); err != nil {
		t.Fatal(err)
	}

	rib := routing.NewRIB()
	if _, err := LoadFiles(rib, PeerSelector{}, bview); err != nil {
		t.Fatal(err)
	}
	v4, _ := rib.Len()
	_, err = LoadFiles(rib, PeerSelector{}, cut)
	var me *Error
	if err == nil || !strings.Contains(err.Error(), "cut.mrt") || !errors.As(err, &me) || me.Offset <= 0 {
		t.Fatalf("truncated file: error %v, want one naming the file and the offset", err)
	}
	if got, _ := rib.Len(); got != v4 {
		t.Errorf("failed load changed the table: %d prefixes, want %d", got, v4)
	}
	if _, err := LoadFiles(rib, PeerSelector{ASN: 1}, bview); err == nil || !strings.Contains(err.Error(), "AS1") {
		t.Errorf("absent peer: error %v", err)
	}
	if got, _ := rib.Len(); got != v4 {
		t.Errorf("failed load changed the table: %d prefixes, want %d", got, v4)
	}
	if _, err := LoadFiles(rib, PeerSelector{}, filepath.Join(t.TempDir(), "missing.gz")); err == nil {
		t.Error("missing file loaded")
	}
	// An empty file, or no file, announces nothing: it must not empty the table.
	empty := filepath.Join(t.TempDir(), "empty.mrt")
	os.WriteFile(empty, nil, 0o644)
	for _, files := range [][]string{{empty}, nil} {
		if _, err := LoadFiles(rib, PeerSelector{}, files...); err == nil || !strings.Contains(err.Error(), "no route") {
			t.Errorf("load of %q: error %v, want no route", files, err)
		}
		if got, _ := rib.Len(); got != v4 {
			t.Errorf("load of %q changed the table: %d prefixes, want %d", files, got, v4)
		}
	}
	// The complete records before the cut are applied when the caller reads them itself.
	l := &Loader{}
	rd, _ := NewReader(bytes.NewReader(raw[:len(raw)/2+7]))
	half := routing.NewRIB()
	if err := l.Apply(rd, half); err == nil {
		t.Error("Apply on a truncated stream: no error")
	}
	half.Flush()
	if n, _ := half.Len(); n == 0 || n >= v4 {
		t.Errorf("records before the cut: %d prefixes (full table %d)", n, v4)
	}
}

// stateChangeBody builds a BGP4MP_STATE_CHANGE_AS4 record body.
func stateChangeBody(peerAS uint32, peer string, from, to uint16) []byte {
	return cat(u32b(peerAS), u32b(65000), u16b(0), u16b(1), ip(peer), ip("192.0.2.254"), u16b(from), u16b(to))
}

// TestLoaderSessionDrop: a state change out of Established in an update file withdraws every
// route of that peer — the other peer's path takes over where it has one — and the peer's
// routes after it re-established count again; other state changes change nothing.
func TestLoaderSessionDrop(t *testing.T) {
	const ts = 1700000000
	attrs := func(path ...uint32) []byte {
		return cat(attr(0x40, attrOrigin, []byte{0}), attr(0x40, attrASPath, seg4(2, path...)),
			attr(0x40, attrNextHop, ip("192.0.2.1")))
	}
	msg := func(peerAS uint32, peer string, a []byte, prefixes ...string) []byte {
		return mrtRecord(TypeBGP4MP, SubMessageAS4, ts, bgp4mp(true, peerAS, 65000, peer, "192.0.2.254",
			update(nil, a, nlri(nil, prefixes...))))
	}
	file := cat(
		msg(64501, "192.0.2.1", attrs(64501, 1), "10.1.0.0/16", "10.2.0.0/16"),
		msg(64502, "192.0.2.2", attrs(64502, 7, 8, 1), "10.1.0.0/16"),                             // longer path: A is best
		mrtRecord(TypeBGP4MP, SubStateChangeAS4, ts, stateChangeBody(64502, "192.0.2.2", 3, 2)),   // B: no-op
		mrtRecord(TypeBGP4MP, SubStateChangeAS4, ts+1, stateChangeBody(64501, "192.0.2.1", 6, 1)), // A drops
	)
	name := filepath.Join(t.TempDir(), "updates.mrt")
	if err := os.WriteFile(name, file, 0o644); err != nil {
		t.Fatal(err)
	}
	origin := func(rib *routing.RIB, p string) string {
		a, ok := rib.Get(netip.MustParsePrefix(p))
		if !ok {
			return "<none>"
		}
		return a.String()
	}
	rib := routing.NewRIB()
	st, err := LoadFiles(rib, PeerSelector{}, name)
	if err != nil {
		t.Fatal(err)
	}
	if got := origin(rib, "10.1.0.0/16"); got != "64502 7 8 1" {
		t.Errorf("10.1.0.0/16 after A dropped: %s, want B's path 64502 7 8 1", got)
	}
	if got := origin(rib, "10.2.0.0/16"); got != "<none>" {
		t.Errorf("10.2.0.0/16 after A dropped: %s, want no route", got)
	}
	if st.SessionDrops != 1 || st.Withdrawn != 2 {
		t.Errorf("stats %+v, want 1 session drop withdrawing 2 routes", st)
	}

	// A comes back and announces again: its routes count again.
	back := cat(file, msg(64501, "192.0.2.1", attrs(64501, 1), "10.2.0.0/16"))
	if err := os.WriteFile(name, back, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFiles(rib, PeerSelector{}, name); err != nil {
		t.Fatal(err)
	}
	if got := origin(rib, "10.2.0.0/16"); got != "64501 1" {
		t.Errorf("10.2.0.0/16 after A re-announced: %s, want 64501 1", got)
	}
}
