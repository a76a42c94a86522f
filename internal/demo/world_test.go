package demo

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/routing/mrt"
	"github.com/netledger/netledger/internal/testenv"
)

func pathText(p []routing.Segment) string {
	a := routing.Attrs{Path: p}
	return a.String()
}

func TestWorld(t *testing.T) {
	w := NewWorld(1, 3000)
	if !equalWorlds(w, NewWorld(1, 3000)) {
		t.Fatal("same seed, different worlds")
	}
	var v4, v6, sets, prepends, empty int
	for _, r := range w.Routers {
		for _, rt := range r.Routes {
			if rt.Prefix.Addr().Is4() {
				v4++
			} else {
				v6++
			}
			if len(rt.Path) == 0 {
				empty++
			}
			for _, s := range rt.Path {
				if s.Type == routing.SegmentSet {
					sets++
				}
				for i := 1; i < len(s.ASNs); i++ {
					if s.ASNs[i] == s.ASNs[i-1] {
						prepends++
						break
					}
				}
			}
		}
	}
	t.Logf("routes: %d IPv4, %d IPv6, %d with an AS_SET, %d prepended, %d empty paths; %d unrouted networks", v4, v6, sets, prepends, empty, len(w.Unrouted))
	if v4 < 2000 || v6 < 500 || sets != 2 || prepends < 100 || empty == 0 || len(w.Unrouted) == 0 {
		t.Error("the world lacks variety")
	}
}

func equalWorlds(a, b *World) bool {
	var x, y bytes.Buffer
	for i := range a.Routers {
		WriteMRT(&x, a.Routers[i], time.Unix(0, 0))
		WriteMRT(&y, b.Routers[i], time.Unix(0, 0))
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

// TestMRT reads the written dumps back with netledger's MRT reader, and with bgpdump as an
// outside check, and compares every route.
func TestMRT(t *testing.T) {
	w := NewWorld(2, 1500)
	dir := t.TempDir()
	for _, r := range w.Routers {
		file := filepath.Join(dir, r.Name+".mrt")
		var b bytes.Buffer
		if err := WriteMRT(&b, r, time.Unix(1795000000, 0)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for _, rt := range r.Routes {
			want[rt.Prefix.String()] = pathText(rt.Path)
		}
		rd, err := mrt.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = rd.Routes(func(rt *mrt.Route) error {
			n++
			if rt.Kind != mrt.Announce {
				t.Errorf("%s: kind %d", rt.Prefix, rt.Kind)
			}
			if got := rt.Attrs.String(); got != want[rt.Prefix.String()] {
				t.Errorf("%s: path %q, want %q", rt.Prefix, got, want[rt.Prefix.String()])
			}
			if !rt.Attrs.NextHop.IsValid() || rt.Attrs.NextHop.Is6() != rt.Prefix.Addr().Is6() {
				t.Errorf("%s: next hop %s", rt.Prefix, rt.Attrs.NextHop)
			}
			return nil
		})
		rd.Close()
		if err != nil || n != len(r.Routes) {
			t.Fatalf("read %d routes of %d: %v", n, len(r.Routes), err)
		}

		bgpdump := testenv.Command(t, "bgpdump")
		out, err := exec.Command(bgpdump, "-m", file).Output()
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != len(r.Routes) {
			t.Fatalf("bgpdump printed %d lines for %d routes", len(lines), len(r.Routes))
		}
		for _, l := range lines {
			f := strings.Split(l, "|")
			if len(f) < 7 || f[2] != "B" || f[4] != "64500" || want[f[5]] != f[6] {
				t.Errorf("bgpdump: %s (want path %q)", l, want[f[5]])
			}
		}
	}
}
