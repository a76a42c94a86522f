package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/netledger/netledger/internal/record"
)

// bucket is one view's hourly or daily interval.
type bucket struct {
	level int
	start int64
	view  string
}

// invalidate drops the packs of the buckets a write touched and marks them dirty.
func (s *Store) invalidate(ctx context.Context, tx *sql.Tx, touched map[bucket]struct{}) error {
	for b := range touched {
		if _, err := tx.ExecContext(ctx, `DELETE FROM packs WHERE view = ? AND level = ? AND start = ?`, b.view, b.level, b.start); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO dirty (level, start, view) VALUES (?, ?, ?)`, b.level, b.start, b.view); err != nil {
			return err
		}
	}
	return nil
}

// invalidateRange drops the packs of every view with starts in [from, to) at level and marks
// those buckets dirty.
func invalidateRange(ctx context.Context, tx *sql.Tx, level int, from, to int64) error {
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO dirty (level, start, view)
		SELECT level, start, view FROM packs WHERE level = ? AND start >= ? AND start < ?`, level, from, to); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM packs WHERE level = ? AND start >= ? AND start < ?`, level, from, to)
	return err
}

// interval is an hourly, daily or weekly interval of all views.
type interval struct {
	level int
	start int64
}

// overBefore reports whether the interval is over by end (the end of the newest interval
// written), so that pack writes its packs.
func (b interval) overBefore(end int64) bool { return b.start+packSeconds(b.level) <= end }

// freshIntervals returns the intervals touched by a write that are over by end and hold no
// points yet (of any view or collector): after the write their points are exactly the
// write's, so their packs are built from memory (packPoints), not read back.
func (s *Store) freshIntervals(ctx context.Context, tx *sql.Tx, touched map[bucket]struct{}, end int64) (map[interval]bool, error) {
	fresh := map[interval]bool{}
	for b := range touched {
		iv := interval{b.level, b.start}
		if _, ok := fresh[iv]; ok || !iv.overBefore(end) {
			continue
		}
		var found int
		err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+levelTable[min(b.level, levelDay)]+
			` WHERE start >= ? AND start < ?)`, b.start, b.start+packSeconds(b.level)).Scan(&found)
		if err != nil {
			return nil, fmt.Errorf("cannot look up points: %w", err)
		}
		fresh[iv] = found == 0
	}
	return fresh, nil
}

// packPoints adds the write's points of interval b (s.points, in key order) to the builders of
// their views: the points at b's level, or for a week the sums of its daily points.
func (s *Store) packPoints(b interval, rows []record.Row, views map[string]*packBuilder) {
	level, lo, hi := min(b.level, levelDay), b.start, b.start+packSeconds(b.level)
	ps := s.points
	i, _ := slices.BinarySearchFunc(ps, pointKey{level, lo, 0}, func(p point, k pointKey) int {
		return cmp.Or(cmp.Compare(p.level, k.level), cmp.Compare(p.start, k.start), cmp.Compare(p.sid, k.sid))
	})
	j := i
	for j < len(ps) && ps[j].level == level && ps[j].start < hi {
		j++
	}
	ps = ps[i:j]
	if b.level == levelWeek { // up to seven days: sum each series' points
		week := slices.Clone(ps)
		slices.SortStableFunc(week, func(x, y point) int { return cmp.Compare(x.sid, y.sid) })
		n := 0
		for k := range week {
			if n > 0 && week[n-1].sid == week[k].sid {
				week[n-1].m.Add(&week[k].m)
				continue
			}
			week[n] = week[k]
			n++
		}
		ps = week[:n]
	}
	for k := range ps {
		p := &ps[k]
		r := &rows[p.row]
		if v := views[r.View]; v != nil {
			v.add(p.sid, &r.Dims, &p.m)
		}
	}
}

// pack writes the packs of the dirty buckets that end at or before end (the end of the newest
// interval written): intervals are packed once they are over. fromMemory builds an interval's
// packs from the write's points where it can (it reports whether it did); the others are
// read back from the point tables.
func (s *Store) pack(ctx context.Context, tx *sql.Tx, end int64, fromMemory func(interval, map[string]*packBuilder) bool) error {
	rows, err := tx.QueryContext(ctx, `SELECT level, start, view FROM dirty
		WHERE (level = ?1 AND start <= ?4 - 3600) OR (level = ?2 AND start <= ?4 - 86400)
		OR (level = ?3 AND start <= ?4 - 604800) ORDER BY level, start`,
		levelHour, levelDay, levelWeek, end)
	if err != nil {
		return err
	}
	var todo []bucket
	for rows.Next() {
		var b bucket
		if err := rows.Scan(&b.level, &b.start, &b.view); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for i := 0; i < len(todo); {
		j := i
		views := map[string]*packBuilder{}
		for ; j < len(todo) && todo[j].level == todo[i].level && todo[j].start == todo[i].start; j++ {
			views[todo[j].view] = newPackBuilder()
		}
		if fromMemory != nil && fromMemory(interval{todo[i].level, todo[i].start}, views) {
			if err := writePacks(ctx, tx, todo[i].level, todo[i].start, views); err != nil {
				return fmt.Errorf("cannot pack level %d at %d: %w", todo[i].level, todo[i].start, err)
			}
		} else if err := s.packBucket(ctx, tx, todo[i].level, todo[i].start, views); err != nil {
			return fmt.Errorf("cannot pack level %d at %d: %w", todo[i].level, todo[i].start, err)
		}
		i = j
	}
	return nil
}

func (s *Store) packBucket(ctx context.Context, tx *sql.Tx, level int, start int64, views map[string]*packBuilder) error {
	table := levelTable[min(level, levelDay)] // weeks sum daily points
	rows, err := tx.QueryContext(ctx, `SELECT s.view, p.sid, s.router, s.class, s.prefix, s.path, s.peer_as, s.origin_as,
		s.asn, s.country, s.region, s.proto, s.src_group, s.dst_group, s.port, `+metricSums+`
		FROM `+table+` p CROSS JOIN series s ON s.id = p.sid WHERE p.start >= ? AND p.start < ?
		GROUP BY p.sid ORDER BY p.sid`, start, start+packSeconds(level))
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		view             string
		sid              int64
		d                record.Dims
		prefix, src, dst []byte
		m                record.Metrics
	)
	targets := metricTargets([]any{&view, &sid, &d.Router, &d.Class, &prefix, &d.Path, &d.PeerAS, &d.OriginAS,
		&d.ASN, &d.Country, &d.Region, &d.Proto, &src, &dst, &d.Port}, &m)
	for rows.Next() {
		if err := rows.Scan(targets...); err != nil {
			return err
		}
		b := views[view]
		if b == nil {
			continue
		}
		if err := decodeAddrs(&d, prefix, src, dst); err != nil {
			return err
		}
		b.add(sid, &d, &m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	return writePacks(ctx, tx, level, start, views)
}

// writePacks stores the packs of views at the interval and clears its dirty marks.
func writePacks(ctx context.Context, tx *sql.Tx, level int, start int64, views map[string]*packBuilder) error {
	for view, b := range views {
		data, dims := b.bytes()
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO packs (level, start, view, data, dims) VALUES (?, ?, ?, ?, ?)`,
			level, start, view, data, dims); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM dirty WHERE level = ? AND start = ? AND view = ?`, level, start, view); err != nil {
			return err
		}
	}
	return nil
}
