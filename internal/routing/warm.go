package routing

import (
	"fmt"
	"math/bits"
	"net/netip"
	"unsafe"

	"github.com/gaissmai/bart"

	"github.com/netledger/netledger/internal/prefetch"
)

// A first-sight lookup in a full table misses the CPU caches at every level of bart's trie:
// the node, then its child array, then the child node, each load depending on the one
// before. LookupBatch overlaps these misses across its addresses: before the real lookups,
// warm walks the sub-tables one step at a time for every address of the batch,
// prefetching what each address's walk will read next, so that a batch of 64 pays about one
// memory latency per step instead of 64.
//
// warm reads bart.Table and bart.Fast's nodes through the mirror types below (bart v0.30's layout). It
// only prefetches: what it reads decides which lines are loaded, never a lookup's result.
// The layout is checked once at start (warmOK); if it does not match, as after an upgrade of
// bart that changed it, warm does nothing and lookups are merely slower
// (TestWarmLayout fails then, so that the mirror is updated).

// mirrorArray is bart's sparse.Array256: a bitset of the occupied indexes and the items of the
// set bits, in index order.
type mirrorArray struct {
	bits  [4]uint64
	items unsafe.Pointer
	n, c  int
}

// mirrorNode is bart's nodes.BartNode.
type mirrorNode struct {
	prefixes mirrorArray // of uint32
	children mirrorArray // of any: *BartNode, *LeafNode or *FringeNode
}

// mirrorTable is bart.Table.
type mirrorTable struct {
	root4, root6 mirrorNode
	size4, size6 int
}

// mirrorFastNode is bart's nodes.FastNode: a BartNode and a rank cache.
type mirrorFastNode struct {
	mirrorNode
	rankCache [256]uint8
}

// mirrorFast is bart.Fast.
type mirrorFast struct {
	root4, root6 mirrorFastNode
	size4, size6 int
}

// eface is the layout of an interface value of type any.
type eface struct {
	typ, data unsafe.Pointer
}

var (
	// nodeType and fastNodeType are the type words of a *nodes.BartNode[uint32] and a
	// *nodes.FastNode[uint32] held in an any
	nodeType, fastNodeType unsafe.Pointer
	// warmOK reports that the mirror types match bart's layout
	warmOK bool
)

func init() {
	var ok4, ok6 bool
	nodeType, ok4 = checkWarmLayout()
	fastNodeType, ok6 = checkWarmLayoutFast()
	warmOK = ok4 && ok6
}

// checkWarmLayoutFast is checkWarmLayout for bart.Fast's IPv6 root.
func checkWarmLayoutFast() (unsafe.Pointer, bool) {
	if unsafe.Sizeof(bart.Fast[uint32]{}) != unsafe.Sizeof(mirrorFast{}) {
		return nil, false
	}
	t := new(bart.Fast[uint32])
	t.Insert(netip.MustParsePrefix("2001:db8:1::/48"), 1)
	t.Insert(netip.MustParsePrefix("2001:db8:2::/48"), 2)
	t.Insert(netip.MustParsePrefix("2001:9::/32"), 3)
	m := (*mirrorFast)(unsafe.Pointer(t))
	r := &m.root6
	if r.children.bits != [4]uint64{1 << 0x20} || r.children.n != 1 || r.prefixes.n != 0 || m.size6 != 3 {
		return nil, false
	}
	kid := (*eface)(r.children.items)
	if fmt.Sprintf("%T", *(*any)(unsafe.Pointer(kid))) != "*nodes.FastNode[uint32]" {
		return nil, false
	}
	n := (*mirrorFastNode)(kid.data)
	if n.children.bits != [4]uint64{1 << 1} || n.children.n != 1 {
		return nil, false
	}
	return kid.typ, true
}

// checkWarmLayout builds a small table whose root has exactly one child, an inner node, and
// checks that the mirror reads it so.
func checkWarmLayout() (unsafe.Pointer, bool) {
	if unsafe.Sizeof(bart.Table[uint32]{}) != unsafe.Sizeof(mirrorTable{}) {
		return nil, false
	}
	t := new(bart.Table[uint32])
	t.Insert(netip.MustParsePrefix("1.2.3.0/24"), 1)
	t.Insert(netip.MustParsePrefix("1.2.4.0/24"), 2)
	t.Insert(netip.MustParsePrefix("1.9.0.0/16"), 3)
	m := (*mirrorTable)(unsafe.Pointer(t))
	r := &m.root4
	if r.children.bits != [4]uint64{1 << 1} || r.children.n != 1 || r.prefixes.n != 0 || m.size4 != 3 {
		return nil, false
	}
	kid := (*eface)(r.children.items)
	if fmt.Sprintf("%T", *(*any)(unsafe.Pointer(kid))) != "*nodes.BartNode[uint32]" {
		return nil, false
	}
	// the child: 1.2 below it (an inner node), 1.9 (a fringe or leaf)
	n := (*mirrorNode)(kid.data)
	if n.children.bits != [4]uint64{1<<2 | 1<<9} || n.children.n != 2 {
		return nil, false
	}
	return kid.typ, true
}

// BatchSize is the number of addresses LookupBatch walks together (warm): a caller's batches
// of this size overlap their cache misses best.
const BatchSize = 64

// warm prefetches the trie nodes the lookups of addrs will read in the split sub-tables
// (IPv4 /8 and longer, IPv6 /16 and longer; the short-prefix tables are small and hot), at
// most BatchSize addresses. When last is not nil (tests), last[i] is set to the leaf or
// fringe where address i's walk ended, if any.
func (t *trie) warm(addrs []netip.Addr, last *[BatchSize]*eface) {
	if !warmOK {
		return
	}
	var (
		cur    [BatchSize]*mirrorNode
		octets [BatchSize]uint64 // the address's octets below the sub-table's, left-aligned
		kid    [BatchSize]*eface
	)
	n := min(len(addrs), BatchSize)
	depth := 0
	for i := range n {
		a := addrs[i]
		w := words(&a)
		if a.Is4() || a.Is4In6() {
			if s := t.v4[byte(w.lo>>24)]; s != nil {
				cur[i] = &(*mirrorTable)(unsafe.Pointer(s)).root4
				octets[i] = w.lo << 40
				depth = max(depth, 3)
			}
			continue
		}
		if d := t.v6[w.hi>>56]; d != nil {
			if s := d[byte(w.hi>>48)]; s != nil {
				cur[i] = &(*mirrorFast)(unsafe.Pointer(s)).root6.mirrorNode
				octets[i] = w.hi<<16 | w.lo>>48
				depth = 6 // a /64 is six octets below a /16
			}
		}
	}
	// octet by octet below the sub-table's root: find the child (reading the node's bitset,
	// prefetched by the step before), prefetch its item; then read the item and prefetch
	// the node it points to
	for range depth {
		for i := range n {
			nd := cur[i]
			if nd == nil {
				continue
			}
			o := uint8(octets[i] >> 56)
			b := &nd.children.bits
			if b[o>>6]&(1<<(o&63)) == 0 {
				cur[i] = nil
				continue
			}
			k := (*eface)(unsafe.Add(nd.children.items, uintptr(rank(b, o)-1)*unsafe.Sizeof(eface{})))
			kid[i] = k
			prefetch.Line(unsafe.Pointer(k))
		}
		for i := range n {
			if cur[i] == nil {
				continue
			}
			k := kid[i]
			prefetch.Line(k.data)
			if k.typ != nodeType && k.typ != fastNodeType {
				cur[i] = nil // a leaf or fringe: the walk ends there
				if last != nil {
					last[i] = k
				}
				continue
			}
			prefetch.Line(unsafe.Add(k.data, 64)) // the children's bitset and items
			cur[i] = (*mirrorNode)(k.data)
			octets[i] <<= 8
		}
	}
}

// rank is bart's BitSet256.Rank: the number of set bits at or below o.
func rank(b *[4]uint64, o uint8) int {
	w := int(o >> 6)
	r := bits.OnesCount64(b[w] & (2<<(o&63) - 1))
	for j := range w {
		r += bits.OnesCount64(b[j])
	}
	return r
}
