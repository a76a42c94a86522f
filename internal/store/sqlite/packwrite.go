package sqlite

import (
	"context"
	"database/sql"
	"fmt"

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

// pack writes the packs of the dirty buckets that end at or before end (the end of the newest
// interval written): intervals are packed once they are over.
func (s *Store) pack(ctx context.Context, tx *sql.Tx, end int64) error {
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
		if err := s.packBucket(ctx, tx, todo[i].level, todo[i].start, views); err != nil {
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
		if d.Prefix, err = decodePrefix(prefix); err != nil {
			return err
		}
		if d.SrcGroup, err = decodeAddr(src); err != nil {
			return err
		}
		if d.DstGroup, err = decodeAddr(dst); err != nil {
			return err
		}
		b.add(sid, &d, &m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
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
