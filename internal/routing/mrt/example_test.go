package mrt_test

import (
	"fmt"
	"net/netip"

	"github.com/netledger/netledger/internal/routing"
	"github.com/netledger/netledger/internal/routing/mrt"
)

// table is a stand-in for a RIB: it keeps one route per prefix from one peer.
type table map[netip.Prefix]routing.Attrs

// Example_loadRIB loads the routes of one peer of a RIB dump (a compiled example; it needs
// the file).
func Example_loadRIB() {
	r, err := mrt.Open("bview.20020722.2337.gz")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	peer := netip.MustParseAddr("193.203.0.1")
	t := table{}
	err = r.Routes(func(rt *mrt.Route) error {
		if rt.Peer.Addr != peer {
			return nil
		}
		switch rt.Kind {
		case mrt.Announce:
			a := *rt.Attrs
			// Attrs is reused by the next record: copy what is kept (a RIB interns it).
			a.Path = append([]routing.Segment(nil), a.Path...)
			for i := range a.Path {
				a.Path[i].ASNs = append([]uint32(nil), a.Path[i].ASNs...)
			}
			a.Communities = append([]uint32(nil), a.Communities...)
			a.LargeCommunities = append([]routing.LargeCommunity(nil), a.LargeCommunities...)
			t[rt.Prefix] = a
		case mrt.Withdraw:
			delete(t, rt.Prefix)
		}
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(t), "routes from", peer)
}
