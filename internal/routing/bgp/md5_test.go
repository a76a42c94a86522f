package bgp

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/testenv"
)

// TestMD5 checks that an MD5-protected listener only talks to a peer signing with the same key.
func TestMD5(t *testing.T) {
	testenv.RequireRoot(t)
	rib := newMapRIB()
	n := neighbor(rib)
	n.Password = "s3cret"
	_, addr, _ := startSpeaker(t, testConfig(), n)

	if nc, err := net.DialTimeout("tcp", addr, 500*time.Millisecond); err == nil {
		nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := nc.Read(make([]byte, 1)); err == nil {
			t.Error("an unsigned connection got data")
		}
		nc.Close()
	}
	for _, tc := range []struct {
		key string
		ok  bool
	}{{"wrong", false}, {"s3cret", true}} {
		timeout := 500 * time.Millisecond // a wrong key: the SYN is dropped, the dial times out
		if tc.ok {
			timeout = wait
		}
		d := net.Dialer{Timeout: timeout,
			Control: md5Control(map[netip.Addr]string{netip.MustParseAddr("127.0.0.1"): tc.key}, false)}
		nc, err := d.Dial("tcp", addr)
		if !tc.ok {
			if err == nil {
				nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, err := nc.Read(make([]byte, 1)); err == nil {
					t.Error("a connection signed with the wrong key got data")
				}
				nc.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("signed dial: %v", err)
		}
		p := newScripted(t, nc)
		p.establish(openSpec{as: 65000, hold: 30, id: "10.0.0.2"})
		p.send(updateMsg([]uint32{65000}, "192.0.2.1", []string{"192.0.2.0/24"}, "", nil))
		eventually(t, wait, "route over the signed session", func() bool { return rib.size() == 1 })
	}
}
