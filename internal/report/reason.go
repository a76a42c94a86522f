// Package report encodes, signs, verifies and decodes the datagrams web servers send to the
// collector: report protocol v2 (docs/protocol.md: several HMAC-SHA256-signed reports per
// datagram, replay-protected) and trafstat v1 (one 308-byte SHA-1-signed report per datagram).
// Everything here is pure and allocation-free on the receive path; the collector
// (internal/source/udpreport) owns sockets, keys, clocks and counters.
package report

import (
	"errors"
	"fmt"
)

// Reason says why a datagram or a report was rejected. The zero value means accepted.
type Reason uint8

// Rejection reasons. Their names are the `reason` label of netledger_reports_rejected_total.
const (
	OK         Reason = iota
	Truncated         // shorter than its header, trailer or announced reports
	Oversized         // longer than the configured maximum
	Version           // not a v2 datagram (bad magic or unknown version) nor an accepted v1 one
	UnknownKey        // v2 key id not configured
	BadMAC            // signature mismatch
	Replay            // sequence number already seen or older than the window
	Stale             // timestamp outside the window
	Malformed         // signed but structurally wrong (count, flags, address text)
	BadAddress        // client address absent, unspecified, or not an address
	Absurd            // a counter beyond what a single request can do
	numReasons
)

// NumReasons is the number of reasons, OK included, for arrays indexed by Reason.
const NumReasons = int(numReasons)

var reasonNames = [...]string{"ok", "truncated", "oversized", "version", "unknown_key", "bad_mac", "replay", "stale", "malformed", "bad_address", "absurd"}

// String returns the reason's metric label.
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason%d", r)
}

// Error is a Reason as an error.
func (r Reason) Error() string { return "report rejected: " + r.String() }

// ReasonOf returns the Reason carried by err, or OK for nil and Malformed for other errors.
func ReasonOf(err error) Reason {
	if err == nil {
		return OK
	}
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return Malformed
}

// Limits beyond which a report is Absurd: no single request or connection does that.
const (
	MaxBytes    = 1 << 42                  // 4 TiB
	MaxPackets  = 1 << 36                  // 68 G packets
	MaxMSS      = 65535                    // bytes
	MaxRTT      = 60_000_000               // µs: one minute
	MaxDuration = 31 * 24 * 3600 * 1000000 // µs: a month
	MaxRequests = 1_000_000                // requests folded into one report
)
