package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/netledger/netledger/internal/record"
)

// goMigrations are the steps of a migration done in Go, after its SQL, in its transaction.
var goMigrations = map[int]func(context.Context, *sql.Tx) error{
	5: migrateDeltaPacks,
}

// seriesPerPack bounds the series of one series pack the migration writes.
const seriesPerPack = 1 << 16

// migrateDeltaPacks converts the series table into series packs and the points tables into
// one pack per view, level and interval start (weeks summed from the days), then drops them.
func migrateDeltaPacks(ctx context.Context, tx *sql.Tx) error {
	m := &Store{metrics: newMetrics()}
	m.keys.add(seriesKey{}) // id 0
	rows, err := tx.QueryContext(ctx, `SELECT id, `+seriesColumns+` FROM series ORDER BY id`)
	if err != nil {
		return err
	}
	var (
		id                                   int64
		k                                    seriesKey
		prefix, src, dst                     []byte
		router, class, path, country, region string
	)
	d := &k.dims
	for rows.Next() {
		if err := rows.Scan(&id, &k.view, &k.collector, &router, &class, &prefix, &path, &d.PeerAS, &d.OriginAS,
			&d.ASN, &country, &region, &d.Proto, &src, &dst, &d.Port); err != nil {
			rows.Close()
			return fmt.Errorf("cannot read series: %w", err)
		}
		d.Router, d.Class, d.Path, d.Country, d.Region = router, class, path, country, region
		if err := decodeAddrs(d, prefix, src, dst); err != nil {
			rows.Close()
			return err
		}
		for int64(m.keys.len()) < id { // a gap in the ids: a key no row has
			m.keys.add(seriesKey{})
		}
		m.keys.add(k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for first := 1; first < m.keys.len(); first += seriesPerPack {
		n := min(seriesPerPack, m.keys.len()-first)
		if _, err := tx.ExecContext(ctx, `INSERT INTO series_packs (first, n, data) VALUES (?, ?, ?)`,
			first, n, seriesPack(n, func(i int) *seriesKey { return m.keys.at(int64(first + i)) })); err != nil {
			return err
		}
	}
	var week []point // the daily points of the week under way, summed per series
	weekIdx := map[int64]int{}
	flush := func(ps []point) error {
		sortPoints(ps)
		gs := m.groupsOf(ps)
		return m.writeGroups(ctx, tx, gs, m.groupBlobs(gs, false), 0)
	}
	for level, table := range []string{"points_base", "points_hour", "points_day"} {
		res := "0"
		if level == levelBase {
			res = "res"
		}
		rows, err := tx.QueryContext(ctx, `SELECT start, sid, `+res+`, `+metricColumns+` FROM `+table+` ORDER BY start, sid`)
		if err != nil {
			return err
		}
		var run []point
		for rows.Next() {
			var p point
			p.level = level
			if err := rows.Scan(metricTargets([]any{&p.start, &p.sid, &p.res}, &p.m)...); err != nil {
				rows.Close()
				return err
			}
			if p.sid <= 0 || p.sid >= int64(m.keys.len()) || p.m.Zero() {
				continue // a point of no series, or of none of its metrics
			}
			if len(run) > 0 && run[0].start != p.start {
				if err := flush(run); err != nil {
					rows.Close()
					return err
				}
				run = run[:0]
			}
			run = append(run, p)
			if level != levelDay {
				continue
			}
			ws := floorTo(p.start, weekSeconds)
			if len(week) > 0 && week[0].start != ws {
				if err := flush(week); err != nil {
					rows.Close()
					return err
				}
				week = nil
				clear(weekIdx)
			}
			if i, ok := weekIdx[p.sid]; ok {
				week[i].m.Add(&p.m)
			} else {
				weekIdx[p.sid] = len(week)
				week = append(week, point{pointKey{levelWeek, ws, p.sid}, 0, p.m})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if err := flush(run); err != nil {
			return err
		}
	}
	if err := flush(week); err != nil {
		return err
	}
	for _, t := range []string{"points_base", "points_hour", "points_day", "series"} {
		if _, err := tx.ExecContext(ctx, `DROP TABLE `+t); err != nil {
			return err
		}
	}
	return nil
}

const metricColumns = "requests, bytes, bytes_in, packets, packets_in, retransmits, duration, rtt_sum, rtt_count, conns, open_conns"

// seriesColumns are the old series table's key columns.
const seriesColumns = "view, collector, router, class, prefix, path, peer_as, origin_as, asn, country, region, proto, src_group, dst_group, port"

// metricTargets returns scan targets for the eleven metric columns.
func metricTargets(dst []any, m *record.Metrics) []any {
	return append(dst, &m.Requests, &m.Bytes, &m.BytesIn, &m.Packets, &m.PacketsIn, &m.Retransmits,
		&m.Duration, &m.RTTSum, &m.RTTCount, &m.Conns, &m.Open)
}
