package tcpinfo

import (
	"encoding/binary"
	"testing"
)

// runBytecode and auditBytecode transcribe inet_diag_bc_run and inet_diag_bc_audit for the two
// op codes used: a naive oracle for the program portBytecode writes.
func runBytecode(bc []byte, sport uint16) bool {
	pos, l := 0, len(bc)
	for l > 0 {
		code, yes, no := bc[pos], int(bc[pos+1]), int(binary.NativeEndian.Uint16(bc[pos+2:]))
		ok := true
		switch code {
		case bcJmp:
			ok = false
		case bcSEq:
			ok = sport == binary.NativeEndian.Uint16(bc[pos+6:])
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
		if code == bcSEq {
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
			if got := runBytecode(bc, uint16(p)); got != in[uint16(p)] {
				t.Fatalf("ports %v: port %d accepted = %v", ports, p, got)
			}
		}
	}
	if portBytecode(nil) != nil {
		t.Error("no ports: want no program")
	}
}
