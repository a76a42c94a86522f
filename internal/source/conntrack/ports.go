package conntrack

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/netledger/netledger/internal/export/ctcsv"
)

// Ports is the set of destination ports accounted by number (the ports file); an empty set
// accounts every port by number. Lookups never allocate.
type Ports struct {
	set map[uint32]struct{}
}

// Len returns the number of entries.
func (p *Ports) Len() int {
	if p == nil {
		return 0
	}
	return len(p.set)
}

// Port returns the port to account a flow to: port itself when the set is empty or holds
// (proto, port), else -1.
func (p *Ports) Port(proto uint8, port uint16) int32 {
	if p == nil || len(p.set) == 0 {
		return int32(port)
	}
	if _, ok := p.set[uint32(proto)<<16|uint32(port)]; ok {
		return int32(port)
	}
	return -1
}

// ParsePorts parses a ports file: one `proto:port` per line (proto by name such as tcp,
// udp, sctp, or number); empty lines and lines starting with # are ignored.
func ParsePorts(data []byte) (*Ports, error) {
	p := &Ports{set: map[uint32]struct{}{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		proto, port, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not proto:port", n, line)
		}
		pn, err := ctcsv.ParseProto(strings.TrimSpace(proto))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		v, err := strconv.ParseUint(strings.TrimSpace(port), 10, 16)
		if err != nil {
			return nil, fmt.Errorf("line %d: invalid port %q", n, port)
		}
		p.set[uint32(pn)<<16|uint32(v)] = struct{}{}
	}
	return p, sc.Err()
}

// LoadPorts reads and parses a ports file.
func LoadPorts(path string) (*Ports, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read ports file: %w", err)
	}
	p, err := ParsePorts(data)
	if err != nil {
		return nil, fmt.Errorf("cannot parse ports file %s: %w", path, err)
	}
	return p, nil
}
