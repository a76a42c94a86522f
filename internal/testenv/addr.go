package testenv

import (
	"math/rand/v2"
	"net/netip"
)

// RandomAddr returns a random address inside p: p's bits kept, the host bits drawn from rng. An
// IPv4 prefix gives an IPv4 address (not IPv4-mapped).
func RandomAddr(rng *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		if rng.IntN(2) == 1 {
			b[i/8] |= 0x80 >> (i % 8)
		} else {
			b[i/8] &^= 0x80 >> (i % 8)
		}
	}
	a := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		a = a.Unmap()
	}
	return a
}
