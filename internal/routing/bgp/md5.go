package bgp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// setMD5 installs (or, with an empty key, removes) a TCP MD5 signature key (RFC 2385) for
// peer on the socket fd. family is the socket's address family: an IPv4 peer on an IPv6
// socket is keyed by its IPv4-mapped address.
func setMD5(fd uintptr, family int, peer netip.Addr, key string) error {
	var sig unix.TCPMD5Sig
	if len(key) > len(sig.Key) {
		return fmt.Errorf("md5 key longer than %d bytes", len(sig.Key))
	}
	peer = peer.Unmap()
	switch {
	case family == unix.AF_INET && peer.Is4():
		sig.Addr.Family = unix.AF_INET
		a := peer.As4()
		copy(sig.Addr.Data[2:6], a[:]) // sockaddr_in: port(2) addr(4)
	case family == unix.AF_INET6:
		sig.Addr.Family = unix.AF_INET6
		a := peer.As16()                                  // IPv4-mapped for an IPv4 peer
		binary.BigEndian.PutUint32(sig.Addr.Data[2:6], 0) // flow info
		copy(sig.Addr.Data[6:22], a[:])                   // sockaddr_in6: port(2) flow(4) addr(16)
	default:
		return fmt.Errorf("md5 key for %v on an address family %d socket", peer, family)
	}
	sig.Keylen = uint16(len(key))
	copy(sig.Key[:], key)
	if err := unix.SetsockoptTCPMD5Sig(int(fd), unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig); err != nil {
		return fmt.Errorf("cannot set TCP MD5 signature for %v: %w", peer, err)
	}
	return nil
}

// md5Control returns a net.Dialer/ListenConfig Control function installing keys for peers. A
// listener skips peers its address family cannot reach (IPv6 peers on an IPv4 socket).
func md5Control(keys map[netip.Addr]string, listener bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		if len(keys) == 0 {
			return nil
		}
		family := unix.AF_INET6
		if network == "tcp4" {
			family = unix.AF_INET
		}
		var serr error
		err := c.Control(func(fd uintptr) {
			if f, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN); err == nil {
				family = f
			}
			for peer, key := range keys {
				if listener && family == unix.AF_INET && !peer.Unmap().Is4() {
					continue
				}
				if err := setMD5(fd, family, peer, key); err != nil {
					serr = err
					return
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}
