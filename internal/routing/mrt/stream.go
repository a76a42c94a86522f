package mrt

import "encoding/binary"

// stream reads big-endian fields the way bgpdump's mstream does: a read past the end returns
// the available bytes padded with zeros and leaves the stream at its end. bgpdump's output for
// slightly malformed records depends on this, so the decoder keeps the same semantics.
type stream struct {
	b []byte
	p int
}

func (s *stream) left() int { return len(s.b) - s.p }

// take returns up to n bytes (fewer at the end) and advances.
func (s *stream) take(n int) []byte {
	if n < 0 || n > s.left() {
		n = s.left()
	}
	v := s.b[s.p : s.p+n]
	s.p += n
	return v
}

// sub returns a stream over the next n bytes (fewer at the end) and advances past them.
func (s *stream) sub(n int) stream { return stream{b: s.take(n)} }

func (s *stream) u8() uint8 {
	if s.p < len(s.b) {
		v := s.b[s.p]
		s.p++
		return v
	}
	return 0
}

func (s *stream) u16() uint16 {
	if s.left() >= 2 {
		v := binary.BigEndian.Uint16(s.b[s.p:])
		s.p += 2
		return v
	}
	var t [2]byte
	copy(t[:], s.take(2))
	return binary.BigEndian.Uint16(t[:])
}

func (s *stream) u32() uint32 {
	if s.left() >= 4 {
		v := binary.BigEndian.Uint32(s.b[s.p:])
		s.p += 4
		return v
	}
	var t [4]byte
	copy(t[:], s.take(4))
	return binary.BigEndian.Uint32(t[:])
}

// addr4 reads 4 bytes into a 4-byte array.
func (s *stream) addr4() (a [4]byte) {
	copy(a[:], s.take(4))
	return a
}

// addr16 reads 16 bytes into a 16-byte array.
func (s *stream) addr16() (a [16]byte) {
	copy(a[:], s.take(16))
	return a
}
