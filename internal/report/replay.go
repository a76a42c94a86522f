package report

import (
	"sync"
)

// ReplayWindow is how many sequence numbers below the highest seen are still accepted (once
// each) from a sender, for datagrams that arrive out of order.
const ReplayWindow = 64

const replayShards = 64

// ReplayFilter rejects replayed v2 datagrams: per sender it keeps the highest sequence number
// accepted and a 64-bit bitmap of the ones below it (IPsec's anti-replay window, RFC 4303
// §3.4.3). A sequence number above the highest is accepted and slides the window; one inside
// the window is accepted once; one below it is rejected.
//
// Senders start their sequence at a time-derived value (Unix nanoseconds when the process
// starts), so a restarted sender continues above what the collector remembers. A sender's state
// is forgotten once it has been silent for longer than the expiry given to Expire (the
// collector uses three times the timestamp window): by then any datagram it sent is stale, so
// replaying it is rejected by the timestamp check instead. ReplayFilter is safe for concurrent use.
type ReplayFilter struct {
	shards [replayShards]replayShard
}

type replayShard struct {
	mu      sync.Mutex
	senders map[uint64]*replayState
}

type replayState struct {
	top    uint64
	bitmap uint64 // bit i: top-i seen
	seen   int64  // last acceptance, Unix nanoseconds
}

// NewReplayFilter returns an empty replay filter.
func NewReplayFilter() *ReplayFilter {
	r := &ReplayFilter{}
	for i := range r.shards {
		r.shards[i].senders = map[uint64]*replayState{}
	}
	return r
}

// Accept records seq for sender at time now (Unix nanoseconds) and reports whether it is new.
// Call it only for datagrams whose signature verified, so forgeries cannot move the window.
func (r *ReplayFilter) Accept(sender, seq uint64, now int64) bool {
	sh := &r.shards[(sender^sender>>32)%replayShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.senders[sender]
	if st == nil {
		sh.senders[sender] = &replayState{top: seq, bitmap: 1, seen: now}
		return true
	}
	switch {
	case seq > st.top:
		if d := seq - st.top; d >= ReplayWindow {
			st.bitmap = 1
		} else {
			st.bitmap = st.bitmap<<d | 1
		}
		st.top = seq
	case st.top-seq >= ReplayWindow:
		return false
	default:
		bit := uint64(1) << (st.top - seq)
		if st.bitmap&bit != 0 {
			return false
		}
		st.bitmap |= bit
	}
	st.seen = now
	return true
}

// Expire forgets senders not accepted from since before now-maxAge and returns how many
// senders are still tracked.
func (r *ReplayFilter) Expire(now, maxAge int64) int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for id, st := range sh.senders {
			if now-st.seen > maxAge {
				delete(sh.senders, id)
			}
		}
		n += len(sh.senders)
		sh.mu.Unlock()
	}
	return n
}
