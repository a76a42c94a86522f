package mrt

import "strconv"

// Text helpers reproducing bgpdump's formatting of numbers and addresses.

func appendUint(dst []byte, v uint64) []byte {
	if v < 10 {
		return append(dst, byte('0'+v))
	}
	return strconv.AppendUint(dst, v, 10)
}

func appendInt(dst []byte, v int64) []byte { return strconv.AppendInt(dst, v, 10) }

// appendIPv4 formats the first four bytes of a as inet_ntoa does.
func appendIPv4(dst []byte, a []byte) []byte {
	for i := 0; i < 4; i++ {
		if i > 0 {
			dst = append(dst, '.')
		}
		v := a[i]
		switch {
		case v >= 100:
			dst = append(dst, '0'+v/100, '0'+v/10%10, '0'+v%10)
		case v >= 10:
			dst = append(dst, '0'+v/10, '0'+v%10)
		default:
			dst = append(dst, '0'+v)
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendIPv6 formats a 16-byte address as bgpdump's fmt_ipv6 does: IPv4-mapped and
// IPv4-compatible addresses in dotted form, and the longest run of zero groups (even a single
// one, the first of equal runs) as "::".
func appendIPv6(dst []byte, a *[16]byte) []byte {
	zero12 := true
	for i := 0; i < 10; i++ {
		if a[i] != 0 {
			zero12 = false
			break
		}
	}
	if zero12 {
		if a[10] == 0xff && a[11] == 0xff {
			return appendIPv4(append(dst, "::ffff:"...), a[12:16])
		}
		if a[10] == 0 && a[11] == 0 {
			v := uint32(a[12])<<24 | uint32(a[13])<<16 | uint32(a[14])<<8 | uint32(a[15])
			if v > 1 {
				return appendIPv4(append(dst, "::"...), a[12:16])
			}
		}
	}
	// Longest run of zero groups.
	best, bestLen := -1, 0
	for i := 0; i < 8; {
		if a[2*i] == 0 && a[2*i+1] == 0 {
			j := i
			for j < 8 && a[2*j] == 0 && a[2*j+1] == 0 {
				j++
			}
			if j-i > bestLen {
				best, bestLen = i, j-i
			}
			i = j
		} else {
			i++
		}
	}
	for i := 0; i < 8; i++ {
		if i == best {
			if i == 0 {
				dst = append(dst, ':')
			}
			dst = append(dst, ':')
			i += bestLen - 1
			continue
		}
		v := uint16(a[2*i])<<8 | uint16(a[2*i+1])
		switch {
		case v >= 0x1000:
			dst = append(dst, hexDigits[v>>12], hexDigits[v>>8&15], hexDigits[v>>4&15], hexDigits[v&15])
		case v >= 0x100:
			dst = append(dst, hexDigits[v>>8], hexDigits[v>>4&15], hexDigits[v&15])
		case v >= 0x10:
			dst = append(dst, hexDigits[v>>4], hexDigits[v&15])
		default:
			dst = append(dst, hexDigits[v])
		}
		if i != 7 {
			dst = append(dst, ':')
		}
	}
	return dst
}
