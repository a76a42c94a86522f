package ctimport

import (
	"context"
	"fmt"
	"time"

	"github.com/netledger/netledger/internal/export/ctcsv"
	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// View is the view imported rows are stored in: the default view of conntrack records,
// dimensions (proto, src_group, dst_group, port) — the conntrack tool's vpn_traffic table.
const View = "conntrack"

// StoreTarget imports into a store (store.Importer, such as the embedded SQLite store): each
// CSV row becomes one row of View at the file's interval, with the rows and the file id
// committed in one transaction.
type StoreTarget struct {
	store    store.Importer
	interval time.Duration
	rows     []record.Row
}

// NewStoreTarget returns a target writing to s. interval is the length of the intervals the
// CSV rows sum (the agent's and the original tool's --interval, 15 s by default): a row
// timestamped t (the end of its interval) is stored at the interval [t−interval, t), aligned
// down to a multiple of interval. It must divide an hour.
func NewStoreTarget(s store.Importer, interval time.Duration) (*StoreTarget, error) {
	if interval < time.Second || time.Hour%interval != 0 || interval%time.Second != 0 {
		return nil, fmt.Errorf("import interval %v: want whole seconds dividing an hour (such as 15s or 1m)", interval)
	}
	return &StoreTarget{store: s, interval: interval}, nil
}

// Imported reports whether the file id was imported before.
func (t *StoreTarget) Imported(ctx context.Context, id string) (bool, error) {
	return t.store.Imported(ctx, id)
}

// Import converts rows and imports them with id.
func (t *StoreTarget) Import(ctx context.Context, id string, rows []ctcsv.Row) error {
	t.rows = t.rows[:0]
	for i := range rows {
		t.rows = append(t.rows, ViewRow(&rows[i], t.interval))
	}
	return t.store.Import(ctx, id, t.rows)
}

// ViewRow turns a CSV row into a row of View, with the metrics the conntrack source's records
// give that view: the client (BytesIn, PacketsIn) is the side that opened the connections,
// the server's direction is Bytes and Packets, connections closed count as requests.
func ViewRow(r *ctcsv.Row, interval time.Duration) record.Row {
	end := r.Time - 1 // the interval's last nanosecond
	start := end - end%int64(interval)
	if end < 0 && end%int64(interval) != 0 {
		start -= int64(interval)
	}
	return record.Row{
		View:       View,
		Start:      time.Unix(0, start).UTC(),
		Resolution: interval,
		Dims: record.Dims{
			Proto:    r.Proto,
			SrcGroup: record.Unmap(r.Src),
			DstGroup: record.Unmap(r.Dst),
			Port:     r.Port,
		},
		Metrics: record.Metrics{
			Requests:  r.Connections,
			Bytes:     r.DstBytes,
			BytesIn:   r.SrcBytes,
			Packets:   r.DstPackets,
			PacketsIn: r.SrcPackets,
			Duration:  r.ConnTimeMs * 1000,
			Conns:     r.Connections,
			Open:      r.Open,
		},
	}
}
