package tcpinfo

import (
	"encoding/binary"
	"slices"
	"testing"
)

// runBytecode and auditBytecode transcribe inet_diag_bc_run and inet_diag_bc_audit for the op
// codes used: a naive oracle for the programs portBytecode and rangeBytecode write.
func runBytecode(bc []byte, sport, dport uint16) bool {
	pos, l := 0, len(bc)
	for l > 0 {
		code, yes, no := bc[pos], int(bc[pos+1]), int(binary.NativeEndian.Uint16(bc[pos+2:]))
		ok := true
		switch code {
		case bcJmp:
			ok = false
		case bcSEq:
			ok = sport == binary.NativeEndian.Uint16(bc[pos+6:])
		case bcSGE:
			ok = sport >= binary.NativeEndian.Uint16(bc[pos+6:])
		case bcSLE:
			ok = sport <= binary.NativeEndian.Uint16(bc[pos+6:])
		case bcDGE:
			ok = dport >= binary.NativeEndian.Uint16(bc[pos+6:])
		case bcDLE:
			ok = dport <= binary.NativeEndian.Uint16(bc[pos+6:])
		default:
			panic("op code not transcribed")
		}
		if ok {
			l, pos = l-yes, pos+yes
		} else {
			l, pos = l-no, pos+no
		}
	}
	return l == 0
}

func validCC(bc []byte, l, cc int) bool {
	pos := 0
	for l >= 0 {
		if cc > l {
			return false
		}
		if cc == l {
			return true
		}
		yes := int(bc[pos+1])
		if yes < 4 || yes&3 != 0 {
			return false
		}
		l, pos = l-yes, pos+yes
	}
	return false
}

func auditBytecode(bc []byte) bool {
	pos, l := 0, len(bc)
	for l > 0 {
		minLen := 4
		code, yes, no := bc[pos], int(bc[pos+1]), int(binary.NativeEndian.Uint16(bc[pos+2:]))
		if code == bcSEq || code == bcSGE || code == bcSLE || code == bcDGE || code == bcDLE {
			minLen = 8
			if l < minLen {
				return false
			}
		}
		if no < minLen || no > l+4 || no&3 != 0 || (no < l && !validCC(bc, len(bc), l-no)) {
			return false
		}
		if yes < minLen || yes > l+4 || yes&3 != 0 {
			return false
		}
		l, pos = l-yes, pos+yes
	}
	return l == 0
}

func TestPortBytecode(t *testing.T) {
	for _, ports := range [][]uint16{{80}, {80, 443}, {8080, 8081, 8082, 8083, 8084, 8085, 8086, 8087, 8088, 8089, 8090}} {
		bc := portBytecode(ports)
		if !auditBytecode(bc) {
			t.Errorf("ports %v: the kernel's audit would reject the program", ports)
		}
		in := map[uint16]bool{}
		for _, p := range ports {
			in[p] = true
		}
		for p := 0; p < 1<<16; p++ {
			if got := runBytecode(bc, uint16(p), 40000); got != in[uint16(p)] {
				t.Fatalf("ports %v: port %d accepted = %v", ports, p, got)
			}
		}
	}
	if portBytecode(nil) != nil {
		t.Error("no ports: want no program")
	}
}

// TestRangeBytecode checks the partition programs: each accepts exactly its range of local or
// remote ports, and of those only the filtered local ports.
func TestRangeBytecode(t *testing.T) {
	ports := []uint16{80, 443, 8080}
	for _, tc := range []struct {
		local  bool
		lo, hi uint16
		filter []uint16
	}{
		{false, 0, 32767, nil},
		{false, 32768, 65535, nil},
		{false, 1000, 1999, nil},
		{true, 0, 442, ports},
		{true, 443, 65535, ports},
		{false, 5, 5, ports},
		{false, 0, 65535, ports},
	} {
		bc := rangeBytecode(nil, tc.local, tc.lo, tc.hi, portBytecode(tc.filter))
		if len(bc) == 0 && (tc.lo > 0 || tc.hi < 65535 || tc.filter != nil) {
			t.Fatalf("%+v: no program", tc)
		}
		if len(bc) > 0 && !auditBytecode(bc) {
			t.Errorf("%+v: the kernel's audit would reject the program", tc)
		}
		for _, sport := range []uint16{0, 1, 80, 443, 442, 444, 1000, 1999, 2000, 8080, 32767, 32768, 65535} {
			for _, dport := range []uint16{0, 1, 4, 5, 6, 80, 443, 999, 1000, 1999, 2000, 32767, 32768, 65534, 65535} {
				port := dport
				if tc.local {
					port = sport
				}
				want := port >= tc.lo && port <= tc.hi && (tc.filter == nil || slices.Contains(tc.filter, sport))
				if got := len(bc) == 0 || runBytecode(bc, sport, dport); got != want {
					t.Errorf("%+v: sport %d dport %d accepted = %v, want %v", tc, sport, dport, got, want)
				}
			}
		}
	}
}
