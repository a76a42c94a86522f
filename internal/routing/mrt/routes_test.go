package mrt

import (
	"bufio"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/testenv"
)

// pathText renders routing segments the way bgpdump does.
func pathText(segs []routing.Segment) string {
	var b strings.Builder
	for i, s := range segs {
		if i > 0 {
			b.WriteByte(' ')
		}
		open, sep, end := "", " ", ""
		switch s.Type {
		case routing.SegmentSet:
			open, sep, end = "{", ",", "}"
		case routing.SegmentConfedSequence:
			open, end = "(", ")"
		case routing.SegmentConfedSet:
			open, sep, end = "[", ",", "]"
		}
		b.WriteString(open)
		for j, a := range s.ASNs {
			if j > 0 {
				b.WriteString(sep)
			}
			b.WriteString(strconv.FormatUint(uint64(a), 10))
		}
		b.WriteString(end)
	}
	return b.String()
}

func commText(c []uint32) string {
	var parts []string
	for _, v := range c {
		switch v {
		case 0xFFFFFF01:
			parts = append(parts, "no-export")
		case 0xFFFFFF02:
			parts = append(parts, "no-advertise")
		case 0xFFFFFF03:
			parts = append(parts, "local-AS")
		default:
			parts = append(parts, fmt.Sprintf("%d:%d", v>>16, v&0xffff))
		}
	}
	return strings.Join(parts, " ")
}

// checkRoute compares a Route with the bgpdump -m line printed for it.
func checkRoute(rt *Route, line string) error {
	f := strings.Split(line, "|")
	kind := map[string]RouteKind{"B": Announce, "A": Announce, "W": Withdraw, "STATE": State}[f[2]]
	if rt.Kind != kind {
		return fmt.Errorf("kind %d, want %s", rt.Kind, f[2])
	}
	if peer, err := netip.ParseAddr(f[3]); err != nil || peer.Unmap() != rt.Peer.Addr {
		return fmt.Errorf("peer %s, want %s", rt.Peer.Addr, f[3])
	}
	if f[4] != strconv.FormatUint(uint64(rt.Peer.ASN), 10) {
		return fmt.Errorf("peer AS %d, want %s", rt.Peer.ASN, f[4])
	}
	if kind == State {
		if f[5] != strconv.Itoa(int(rt.OldState)) || f[6] != strconv.Itoa(int(rt.NewState)) {
			return fmt.Errorf("states %d→%d", rt.OldState, rt.NewState)
		}
		return nil
	}
	if p, err := netip.ParsePrefix(f[5]); err != nil || p.Masked() != rt.Prefix {
		return fmt.Errorf("prefix %s, want %s", rt.Prefix, f[5])
	}
	i := 6
	if strings.HasSuffix(f[0], "_AP") {
		if f[i] != strconv.FormatUint(uint64(rt.PathID), 10) {
			return fmt.Errorf("path ID %d, want %s", rt.PathID, f[i])
		}
		i++
	}
	if kind == Withdraw {
		return nil
	}
	a := rt.Attrs
	if got := pathText(a.Path); got != f[i] {
		return fmt.Errorf("path %q, want %q", got, f[i])
	}
	if got := []string{"IGP", "EGP", "INCOMPLETE"}[a.Origin]; got != f[i+1] {
		return fmt.Errorf("origin %s, want %s", got, f[i+1])
	}
	if nh, err := netip.ParseAddr(f[i+2]); err == nil && f[i+2] != "255.255.255.255" && nh.Unmap() != a.NextHop {
		return fmt.Errorf("next hop %s, want %s", a.NextHop, f[i+2])
	}
	if lp := strconv.FormatUint(uint64(a.LocalPref), 10); lp != f[i+3] {
		return fmt.Errorf("local pref %s, want %s", lp, f[i+3])
	}
	if med := strconv.FormatUint(uint64(a.MED), 10); med != f[i+4] && strconv.Itoa(int(int32(a.MED))) != f[i+4] {
		return fmt.Errorf("MED %s, want %s", med, f[i+4])
	}
	if c := commText(a.Communities); c != f[i+5] {
		return fmt.Errorf("communities %q, want %q", c, f[i+5])
	}
	return nil
}

// TestRoutesMatchBgpdump checks the route API against bgpdump's expected output, line by line:
// every printed route (peer, prefix, path ID, AS path, origin, next hop, local pref, MED,
// communities) comes out of Routes in the same order.
func TestRoutesMatchBgpdump(t *testing.T) {
	dir := testenv.Testdata(t, "mrt/ripe-bgpdump")
	files, _ := filepath.Glob(filepath.Join(dir, "test_data", "*"))
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			sc := bufio.NewScanner(expected(t, dir, name))
			sc.Buffer(make([]byte, 1<<20), 1<<24)
			r, err := Open(f)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			n := 0
			err = r.Routes(func(rt *Route) error {
				if !sc.Scan() {
					return fmt.Errorf("route %d (%s) beyond bgpdump's %d lines", n+1, rt.Prefix, n)
				}
				n++
				if err := checkRoute(rt, sc.Text()); err != nil {
					return fmt.Errorf("route %d: %w\n  line: %s", n, err, sc.Text())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if sc.Scan() {
				t.Fatalf("bgpdump has more lines than routes after %d: %s", n, sc.Text())
			}
			st := r.RouteStats()
			t.Logf("%d routes, %d records, %d skipped, %d bad prefixes", n, st.Records, st.Skipped, st.BadPrefixes)
		})
	}
}

// TestRoutesAS4Merge checks the RFC 6793 merge of a 2-byte AS_PATH with AS4_PATH.
func TestRoutesAS4Merge(t *testing.T) {
	// AS_PATH (2-byte): 100 23456 23456 ; AS4_PATH: 4200000000 4200000001
	asPath := []byte{2, 3, 0, 100, 0x5b, 0xa0, 0x5b, 0xa0}
	as4 := []byte{2, 2, 0xfa, 0x56, 0xea, 0x00, 0xfa, 0x56, 0xea, 0x01}
	var attrs []byte
	attrs = append(attrs, 0x40, attrOrigin, 1, 0)
	attrs = append(attrs, 0x40, attrASPath, byte(len(asPath)))
	attrs = append(attrs, asPath...)
	attrs = append(attrs, 0xc0, attrAS4Path, byte(len(as4)))
	attrs = append(attrs, as4...)
	attrs = append(attrs, 0x40, attrNextHop, 4, 10, 0, 0, 1)
	body := append([]byte{byte(len(attrs) >> 8), byte(len(attrs))}, attrs...)
	var a attributes
	s := stream{b: body}
	a.decode(&s, false, false)
	if got := string(a.pathString()); got != "100 4200000000 4200000001" {
		t.Errorf("bgpdump text %q", got)
	}
	var ra routing.Attrs
	a.Routing(&ra, false)
	if got := pathText(ra.Path); got != "100 4200000000 4200000001" {
		t.Errorf("routing path %q", got)
	}
	if ra.NextHop != netip.MustParseAddr("10.0.0.1") || ra.Origin != routing.OriginIGP {
		t.Errorf("attrs %+v", ra)
	}
}
