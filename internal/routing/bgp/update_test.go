package bgp

import (
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/netledger/netledger/internal/routing"
)

func TestMergePath(t *testing.T) {
	seq := func(as ...uint32) *bgp.As4PathParam { return bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, as) }
	set := func(as ...uint32) *bgp.As4PathParam { return bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SET, as) }
	confed := func(as ...uint32) *bgp.As4PathParam {
		return bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_CONFED_SEQ, as)
	}
	const trans = bgp.AS_TRANS
	cases := []struct {
		name   string
		asPath []*bgp.As4PathParam
		as4    []*bgp.As4PathParam
		as2    bool
		want   string
	}{
		{"4-byte peer ignores AS4_PATH", []*bgp.As4PathParam{seq(65000, 4200000000)}, []*bgp.As4PathParam{seq(1, 2)}, false, "65000 4200000000"},
		{"2-byte peer without AS4_PATH", []*bgp.As4PathParam{seq(65000, 64496)}, nil, true, "65000 64496"},
		{"merge replaces AS_TRANS", []*bgp.As4PathParam{seq(65000, trans, trans)}, []*bgp.As4PathParam{seq(4200000000, 4200000001)}, true,
			"65000 4200000000 4200000001"},
		{"AS4_PATH longer is ignored", []*bgp.As4PathParam{seq(65000, trans)}, []*bgp.As4PathParam{seq(1, 2, 3)}, true, "65000 23456"},
		{"set counts one", []*bgp.As4PathParam{seq(65000, trans), set(trans, 64496)}, []*bgp.As4PathParam{seq(4200000000), set(4200000001, 64496)}, true,
			"65000 4200000000 {4200000001,64496}"},
		{"confed kept, AS4 confed dropped", []*bgp.As4PathParam{confed(64512), seq(65000, trans)}, []*bgp.As4PathParam{confed(1), seq(4200000000)}, true,
			"(64512) 65000 4200000000"},
		{"equal lengths", []*bgp.As4PathParam{seq(trans, trans)}, []*bgp.As4PathParam{seq(4200000000, 4200000001)}, true, "4200000000 4200000001"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ap []bgp.AsPathParamInterface
			for _, p := range tc.asPath {
				ap = append(ap, p)
			}
			var as4 *bgp.PathAttributeAs4Path
			if tc.as4 != nil {
				as4 = bgp.NewPathAttributeAs4Path(tc.as4)
			}
			got := pathString(mergePath(bgp.NewPathAttributeAsPath(ap), as4, tc.as2))
			if got != tc.want {
				t.Errorf("-got %q +want %q", got, tc.want)
			}
		})
	}
}

// TestConvertTwoByteWire decodes a 2-byte-AS UPDATE from the wire, as a 2-byte peer sends it.
func TestConvertTwoByteWire(t *testing.T) {
	two := &bgp.MarshallingOption{Use2ByteAS: true}
	m := bgp.NewBGPUpdateMessage(nil, []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(2),
		bgp.NewPathAttributeAsPath([]bgp.AsPathParamInterface{bgp.NewAsPathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint16{65000, bgp.AS_TRANS})}),
		bgp.NewPathAttributeAs4Path([]*bgp.As4PathParam{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, []uint32{4200000000})}),
		func() bgp.PathAttributeInterface {
			a, _ := bgp.NewPathAttributeNextHop(netip.MustParseAddr("192.0.2.1"))
			return a
		}(),
		bgp.NewPathAttributeLocalPref(200),
	}, []bgp.PathNLRI{{NLRI: func() bgp.NLRI { n, _ := bgp.NewIPAddrPrefix(netip.MustParsePrefix("10.1.0.0/16")); return n }()}})
	b, err := m.Serialize(two)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := bgp.ParseBGPMessage(b, two)
	if err != nil {
		t.Fatal(err)
	}
	var u update
	if err := convert(parsed.Body.(*bgp.BGPUpdate), true, false, &u); err != nil {
		t.Fatal(err)
	}
	if len(u.Announce) != 1 || u.Announce[0].Prefix != netip.MustParsePrefix("10.1.0.0/16") {
		t.Fatalf("announce %+v", u.Announce)
	}
	a := u.Attrs[u.Announce[0].Attrs]
	if got := pathString(a.Path); got != "65000 4200000000" || a.Origin != routing.OriginIncomplete || !a.HasLocalPref || a.LocalPref != 200 ||
		a.NextHop != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("attrs %+v path %q", a, got)
	}
}

// FuzzConvert feeds arbitrary UPDATE bodies through gobgp's decoder and our conversion: no
// panic, and every route is a valid, masked IPv4/IPv6 prefix with an attribute set that has a
// next hop of a matching family.
func FuzzConvert(f *testing.F) {
	seed := []*bgp.BGPMessage{
		updateMsg([]uint32{65000, 64496}, "192.0.2.1", []string{"198.51.100.0/24", "10.0.0.0/8"}, "2001:db8::1", []string{"2001:db8::/32"},
			bgp.NewPathAttributeCommunities([]uint32{1, 2}), bgp.NewPathAttributeLargeCommunities([]*bgp.LargeCommunity{{ASN: 1, LocalData1: 2, LocalData2: 3}})),
		withdrawMsg([]string{"198.51.100.0/24"}, []string{"2001:db8::/32"}),
		bgp.NewEndOfRib(bgp.RF_IPv6_UC),
	}
	for _, m := range seed {
		b, err := m.Serialize()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[19:], false, false)
		f.Add(b[19:], true, false)
	}
	f.Fuzz(func(t *testing.T, body []byte, as2, addPath bool) {
		opt := &bgp.MarshallingOption{Use2ByteAS: as2}
		if addPath {
			opt.AddPath = map[bgp.Family]bgp.BGPAddPathMode{bgp.RF_IPv4_UC: bgp.BGP_ADD_PATH_RECEIVE, bgp.RF_IPv6_UC: bgp.BGP_ADD_PATH_RECEIVE}
		}
		h := bgp.BGPHeader{Type: bgp.BGP_MSG_UPDATE, Len: uint16(19 + len(body))}
		msg, err := bgp.ParseBGPBody(&h, body, opt)
		if msg == nil {
			return
		}
		u, ok := msg.Body.(*bgp.BGPUpdate)
		if !ok {
			t.Fatalf("body %T", msg.Body)
		}
		var up update
		_ = convert(u, as2, err != nil, &up)
		for _, a := range up.Announce {
			if !a.Prefix.IsValid() || a.Prefix != a.Prefix.Masked() {
				t.Fatalf("bad prefix %v", a.Prefix)
			}
			nh := up.Attrs[a.Attrs].NextHop
			if !nh.IsValid() {
				t.Fatalf("announce %v without next hop", a.Prefix)
			}
			if a.Attrs == attrsMP6 && a.Prefix.Addr().Is4() {
				t.Fatalf("ipv4 prefix %v in the ipv6 attribute set", a.Prefix)
			}
		}
		for _, w := range up.Withdraw {
			if !w.Prefix.IsValid() {
				t.Fatalf("bad withdrawn prefix")
			}
		}
	})
}
