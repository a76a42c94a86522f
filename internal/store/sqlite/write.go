package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

const metricColumns = "requests, bytes, bytes_in, packets, packets_in, retransmits, duration, rtt_sum, rtt_count, conns, open_conns"

const metricSums = "SUM(p.requests), SUM(p.bytes), SUM(p.bytes_in), SUM(p.packets), SUM(p.packets_in), " +
	"SUM(p.retransmits), SUM(p.duration), SUM(p.rtt_sum), SUM(p.rtt_count), SUM(p.conns), SUM(p.open_conns)"

// columnSums sums the metric columns of one table.
const columnSums = "SUM(requests), SUM(bytes), SUM(bytes_in), SUM(packets), SUM(packets_in), " +
	"SUM(retransmits), SUM(duration), SUM(rtt_sum), SUM(rtt_count), SUM(conns), SUM(open_conns)"

const addMetrics = "requests = requests + excluded.requests, bytes = bytes + excluded.bytes, " +
	"bytes_in = bytes_in + excluded.bytes_in, packets = packets + excluded.packets, " +
	"packets_in = packets_in + excluded.packets_in, retransmits = retransmits + excluded.retransmits, " +
	"duration = duration + excluded.duration, rtt_sum = rtt_sum + excluded.rtt_sum, " +
	"rtt_count = rtt_count + excluded.rtt_count, conns = conns + excluded.conns, " +
	"open_conns = open_conns + excluded.open_conns"

const allZero = "requests = 0 AND bytes = 0 AND bytes_in = 0 AND packets = 0 AND packets_in = 0 AND " +
	"retransmits = 0 AND duration = 0 AND rtt_sum = 0 AND rtt_count = 0 AND conns = 0 AND open_conns = 0"

func (s *Store) prepare(ctx context.Context) error {
	var err error
	s.savePos, err = s.w.PrepareContext(ctx, `INSERT INTO positions (consumer, segment, offset) VALUES (?, ?, ?)
		ON CONFLICT (consumer) DO UPDATE SET segment = excluded.segment, offset = excluded.offset`)
	if err != nil {
		return fmt.Errorf("cannot prepare position statement: %w", err)
	}
	return nil
}

// Commit adds the batch's rows to the stored rows with the same key, and each to its hourly and
// daily roll-up, and saves the consumer's position, in one transaction.
func (s *Store) Commit(ctx context.Context, b store.Batch) error {
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.writeRows(ctx, tx, s.collector, b.Rows); err != nil {
			return err
		}
		return s.finish(ctx, tx, b)
	})
	s.metrics.observe("commit", len(b.Rows), t0, err)
	if err != nil {
		return fmt.Errorf("cannot commit %d rows: %w", len(b.Rows), err)
	}
	return nil
}

// finish calls the fault hook and saves the batch's position.
func (s *Store) finish(ctx context.Context, tx *sql.Tx, b store.Batch) error {
	if s.fault != nil {
		if err := s.fault(b); err != nil {
			return err
		}
	}
	if b.Consumer == "" {
		return nil
	}
	_, err := tx.StmtContext(ctx, s.savePos).ExecContext(ctx, b.Consumer, int64(b.Position.Segment), b.Position.Offset)
	return err
}

// write runs fn in a write transaction, with the series index synced to the database; the
// series fn adds to the index (ids above s.maxSid) leave it again if the transaction fails.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.w == nil {
		return errors.New("store closed")
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	s.wtx = &writeTx{Tx: tx, conn: conn, stmts: map[stmtKey]driver.Stmt{}}
	defer s.wtx.closeStmts()
	s.seriesIns.reset()
	for _, w := range s.pointsIns {
		w.reset()
	}
	if err := s.syncSeries(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	s.added = 0
	err = fn(tx)
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	if err != nil {
		if s.added > 0 { // rare: a failed write forgets the series it added
			for k, id := range s.sids {
				if id > s.maxSid {
					delete(s.sids, k)
				}
			}
		}
		return err
	}
	s.maxSid += int64(s.added)
	return nil
}

// writeRows adds rows (merged within the batch first) to their points and roll-ups, drops the
// packs of the hours and days written to, and packs the hours and days that are over.
func (s *Store) writeRows(ctx context.Context, tx *sql.Tx, collector string, rows []record.Row) error {
	clear(s.acc)
	if len(rows) > 0 { // a point per row and level from its own up, at most (rows are mostly of one resolution)
		l, _ := levelOf(rows[0].Resolution)
		s.points = slices.Grow(s.points[:0], (levels-l)*len(rows))
	}
	touched := map[bucket]struct{}{}
	var last [levels]bucket // the bucket last added to touched per level (rows come in runs)
	var end int64
	if err := s.seriesIDs(ctx, tx, collector, rows); err != nil {
		return err
	}
	for i := range rows {
		r := &rows[i]
		if r.Metrics.Zero() {
			continue
		}
		if r.View == "" {
			return errors.New("row without view")
		}
		level, err := levelOf(r.Resolution)
		if err != nil {
			return err
		}
		sid := s.rowSids[i]
		start := r.Start.Unix()
		res := int64(r.Resolution / time.Second)
		end = max(end, start+res)
		for l := level; l < levels; l++ {
			st := start
			if l > levelBase {
				st = floorTo(start, levelSeconds[l])
				if b := (bucket{l, st, r.View}); b != last[l] {
					touched[b] = struct{}{}
					last[l] = b
					if l == levelDay {
						touched[bucket{levelWeek, floorTo(start, weekSeconds), r.View}] = struct{}{}
					}
				}
			}
			k := pointKey{l, st, sid}
			if i, ok := s.acc[k]; ok {
				s.points[i].m.Add(&r.Metrics)
				continue
			}
			s.acc[k] = len(s.points)
			s.points = append(s.points, point{k, res, int32(i), r.Metrics})
		}
	}
	// The intervals that hold no point before this write and are over: their packs are built
	// from s.points.
	fresh, err := s.freshIntervals(ctx, tx, touched, end)
	if err != nil {
		return err
	}
	// Key order: each table's B-tree is walked forward.
	slices.SortFunc(s.points, func(a, b point) int {
		if a.level != b.level {
			return a.level - b.level
		}
		if a.start != b.start {
			return cmpInt(a.start, b.start)
		}
		return cmpInt(a.sid, b.sid)
	})
	for i := range s.points {
		p := &s.points[i]
		w := s.pointsIns[p.level]
		m := &p.m
		if p.level == levelBase {
			err = w.add(ctx, s.wtx, p.start, p.sid, p.res, int64(m.Requests), int64(m.Bytes), int64(m.BytesIn),
				int64(m.Packets), int64(m.PacketsIn), int64(m.Retransmits), int64(m.Duration), int64(m.RTTSum),
				int64(m.RTTCount), int64(m.Conns), int64(m.Open))
		} else {
			err = w.add(ctx, s.wtx, p.start, p.sid, int64(m.Requests), int64(m.Bytes), int64(m.BytesIn),
				int64(m.Packets), int64(m.PacketsIn), int64(m.Retransmits), int64(m.Duration), int64(m.RTTSum),
				int64(m.RTTCount), int64(m.Conns), int64(m.Open))
		}
		if err != nil {
			return err
		}
	}
	for _, w := range s.pointsIns {
		if err := w.flush(ctx, s.wtx); err != nil {
			return err
		}
	}
	if err := s.invalidate(ctx, tx, touched); err != nil {
		return fmt.Errorf("cannot invalidate packs: %w", err)
	}
	return s.pack(ctx, tx, end, func(b interval, views map[string]*packBuilder) bool {
		if !fresh[b] {
			return false
		}
		s.packPoints(b, rows, views)
		return true
	})
}

// chunk is the number of points per statement, seriesChunk the number of series.
const (
	chunk       = 256
	seriesChunk = 256
)

// pointInserter writes points to level's table, adding to the points already stored.
func pointInserter(level int) *inserter {
	cols := append([]string{"start", "sid"}, strings.Split(metricColumns, ", ")...)
	set := addMetrics
	if level == levelBase {
		cols = slices.Insert(cols, 2, "res")
		set = "res = excluded.res, " + addMetrics
	}
	zero := make([]string, len(cols))
	for c := range cols[len(cols)-nMetrics:] {
		zero[len(cols)-nMetrics+c] = "0"
	}
	return newInserter(levelTable[level], cols, zero, " ON CONFLICT (start, sid) DO UPDATE SET "+set, chunk)
}

// seriesInserter writes new series with their ids.
func seriesInserter() *inserter {
	cols := append([]string{"id"}, strings.Split(seriesColumns, ", ")...)
	zero := []string{"", "", "", "''", "''", "x''", "''", "0", "0", "0", "''", "''", "0", "x''", "x''", "0"}
	return newInserter("series", cols, zero, "", seriesChunk)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func appendMetrics(args []any, m *record.Metrics) []any {
	return append(args, int64(m.Requests), int64(m.Bytes), int64(m.BytesIn), int64(m.Packets),
		int64(m.PacketsIn), int64(m.Retransmits), int64(m.Duration), int64(m.RTTSum),
		int64(m.RTTCount), int64(m.Conns), int64(m.Open))
}

// metricTargets returns scan targets for the eleven metric columns.
func metricTargets(dst []any, m *record.Metrics) []any {
	return append(dst, &m.Requests, &m.Bytes, &m.BytesIn, &m.Packets, &m.PacketsIn, &m.Retransmits,
		&m.Duration, &m.RTTSum, &m.RTTCount, &m.Conns, &m.Open)
}

// syncSeries brings the in-memory series index up to date inside a write transaction: the
// series stored with ids above the highest known (all of them at the first write; afterwards
// only those another process added). Series are never deleted, and BEGIN IMMEDIATE holds the
// database's write lock, so the index is complete until the transaction ends.
func (s *Store) syncSeries(ctx context.Context, tx *sql.Tx) error {
	var newest sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(id) FROM series`).Scan(&newest); err != nil {
		return fmt.Errorf("cannot read series: %w", err)
	}
	if newest.Int64 <= s.maxSid {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, `+seriesColumns+` FROM series WHERE id > ?`, s.maxSid)
	if err != nil {
		return fmt.Errorf("cannot read series: %w", err)
	}
	defer rows.Close()
	strs := map[string]string{} // one copy of each name, path and code
	intern := func(v string) string {
		if w, ok := strs[v]; ok {
			return w
		}
		strs[v] = v
		return v
	}
	var (
		id                                   int64
		k                                    seriesKey
		view, collector                      string
		prefix, src, dst                     []byte
		router, class, path, country, region string
	)
	d := &k.dims
	for rows.Next() {
		if err := rows.Scan(&id, &view, &collector, &router, &class, &prefix, &path, &d.PeerAS, &d.OriginAS,
			&d.ASN, &country, &region, &d.Proto, &src, &dst, &d.Port); err != nil {
			return fmt.Errorf("cannot read series: %w", err)
		}
		k.view, k.collector = intern(view), intern(collector)
		d.Router, d.Class, d.Path, d.Country, d.Region = intern(router), intern(class), intern(path), intern(country), intern(region)
		if err := decodeAddrs(d, prefix, src, dst); err != nil {
			return err
		}
		s.sids[k] = id
		s.maxSid = max(s.maxSid, id)
	}
	return rows.Err()
}

// seriesIDs sets s.rowSids[i] to row i's series id, and inserts the series not in the index
// with the next free ids, seriesChunk per statement, adding them to the index (counted in
// s.added).
// The in-memory index (syncSeries) is the only guard of a key's uniqueness: the store is the
// database's one writer while it holds the write lock.
func (s *Store) seriesIDs(ctx context.Context, tx *sql.Tx, collector string, rows []record.Row) error {
	s.rowSids = slices.Grow(s.rowSids[:0], len(rows))[:len(rows)]
	clear(s.rowSids)
	if len(s.sids) == 0 { // the first series of a store: room for a batch of new ones
		s.sids = make(map[seriesKey]int64, len(rows))
	}
	next := s.maxSid + int64(s.added) + 1
	w := s.seriesIns
	for i := range rows {
		r := &rows[i]
		if r.Metrics.Zero() || r.View == "" {
			continue
		}
		k := seriesKey{r.View, collector, r.Dims}
		if id, ok := s.sids[k]; ok {
			s.rowSids[i] = id
			continue
		}
		id := next
		next++
		s.sids[k] = id
		s.added++
		s.rowSids[i] = id
		d := &r.Dims
		if err := w.add(ctx, s.wtx, id, r.View, collector, d.Router, d.Class, encodePrefix(d.Prefix), d.Path,
			int64(d.PeerAS), int64(d.OriginAS), int64(d.ASN), d.Country, d.Region, int64(d.Proto),
			encodeAddr(d.SrcGroup), encodeAddr(d.DstGroup), int64(d.Port)); err != nil {
			return err
		}
	}
	return w.flush(ctx, s.wtx)
}

// seriesColumns are the series table's key columns, in the order of seriesInsert's parameters
// after the id.
const seriesColumns = "view, collector, router, class, prefix, path, peer_as, origin_as, asn, country, region, proto, src_group, dst_group, port"

// Replace deletes this collector's rows with starts in [from, to) at every resolution — the
// base rows in the range, the roll-ups of whole hours and days inside it, and the base rows'
// share of the roll-ups of the partly covered hours and days — and writes b, in one
// transaction (netledger replay). Imported rows (collector "<collector>/import") stay.
func (s *Store) Replace(ctx context.Context, from, to time.Time, b store.Batch) error {
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		if err := s.deleteRange(ctx, tx, from.Unix(), to.Unix()); err != nil {
			return err
		}
		if err := s.writeRows(ctx, tx, s.collector, b.Rows); err != nil {
			return err
		}
		return s.finish(ctx, tx, b)
	})
	s.metrics.observe("replace", len(b.Rows), t0, err)
	if err != nil {
		return fmt.Errorf("cannot replace rows: %w", err)
	}
	return nil
}

func (s *Store) deleteRange(ctx context.Context, tx *sql.Tx, from, to int64) error {
	// sub[l] holds what the deleted finer rows contributed to level l's points.
	var sub [levels]map[pointKey]*record.Metrics
	for l := range levels {
		sub[l] = map[pointKey]*record.Metrics{}
	}
	for l := range levels {
		t := levelTable[l]
		for k, m := range sub[l] {
			args := appendMetrics(nil, m)
			args = append(args, k.start, k.sid)
			if _, err := tx.ExecContext(ctx, `UPDATE `+t+` SET requests = requests - ?, bytes = bytes - ?,
				bytes_in = bytes_in - ?, packets = packets - ?, packets_in = packets_in - ?,
				retransmits = retransmits - ?, duration = duration - ?, rtt_sum = rtt_sum - ?,
				rtt_count = rtt_count - ?, conns = conns - ?, open_conns = open_conns - ?
				WHERE start = ? AND sid = ?`, args...); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE start = ? AND sid = ? AND `+allZero, k.start, k.sid); err != nil {
				return err
			}
		}
		lo, hi := from, to
		if l > levelBase {
			if err := invalidateRange(ctx, tx, l, floorTo(from, levelSeconds[l]), to); err != nil {
				return err
			}
			if l == levelDay {
				if err := invalidateRange(ctx, tx, levelWeek, floorTo(from, weekSeconds), to); err != nil {
					return err
				}
			}
			lo, hi = ceilTo(from, levelSeconds[l]), floorTo(to, levelSeconds[l])
		}
		if lo >= hi {
			continue
		}
		rows, err := tx.QueryContext(ctx, `SELECT p.start, p.sid, `+metricColumnsOf("p")+` FROM `+t+` p
			CROSS JOIN series s ON s.id = p.sid WHERE p.start >= ? AND p.start < ? AND s.collector = ?`,
			lo, hi, s.collector)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k pointKey
			var m record.Metrics
			if err := rows.Scan(metricTargets([]any{&k.start, &k.sid}, &m)...); err != nil {
				rows.Close()
				return err
			}
			for c := l + 1; c < levels; c++ {
				ck := pointKey{c, floorTo(k.start, levelSeconds[c]), k.sid}
				if acc, ok := sub[c][ck]; ok {
					acc.Add(&m)
				} else {
					mm := m
					sub[c][ck] = &mm
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE start >= ? AND start < ?
			AND sid IN (SELECT id FROM series WHERE collector = ?)`, lo, hi, s.collector); err != nil {
			return err
		}
	}
	return nil
}

func metricColumnsOf(alias string) string {
	return alias + ".requests, " + alias + ".bytes, " + alias + ".bytes_in, " + alias + ".packets, " +
		alias + ".packets_in, " + alias + ".retransmits, " + alias + ".duration, " + alias + ".rtt_sum, " +
		alias + ".rtt_count, " + alias + ".conns, " + alias + ".open_conns"
}

// ImportCollector returns the collector name imported rows are stored under, so that a replay
// of this collector's spool (Replace) leaves them alone.
func (s *Store) ImportCollector() string { return s.collector + "/import" }

// Import adds rows (at their own resolution, rolled up as by Commit) and marks the file id
// imported, in one transaction; a file imported before is skipped, so importing twice changes
// nothing.
func (s *Store) Import(ctx context.Context, id string, rows []record.Row) error {
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM imports WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if err := s.writeRows(ctx, tx, s.ImportCollector(), rows); err != nil {
			return err
		}
		if err := s.finish(ctx, tx, store.Batch{Rows: rows}); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO imports (id, imported_at, rows) VALUES (?, ?, ?)`,
			id, time.Now().Unix(), len(rows))
		return err
	})
	s.metrics.observe("import", len(rows), t0, err)
	if err != nil {
		return fmt.Errorf("cannot import %s: %w", id, err)
	}
	return nil
}

// Expire deletes the points older than each resolution's retention (by interval start).
func (s *Store) Expire(ctx context.Context, now time.Time) error {
	ret := [levels]time.Duration{s.cfg.Retention.Base, s.cfg.Retention.Hourly, s.cfg.Retention.Daily}
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		for l := range levels {
			if ret[l] <= 0 {
				continue
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM `+levelTable[l]+` WHERE start < ?`, now.Add(-ret[l]).Unix())
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			s.metrics.expired.WithLabelValues(levelTable[l]).Add(float64(n))
			for _, t := range []string{"packs", "dirty"} {
				if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE level = ? AND start < ?`, l, now.Add(-ret[l]).Unix()); err != nil {
					return err
				}
				if l == levelDay { // weeks holding expired days
					if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE level = ? AND start < ?`, levelWeek, now.Add(-ret[l]).Unix()); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	s.metrics.observe("expire", 0, t0, err)
	if err != nil {
		return fmt.Errorf("cannot expire rows: %w", err)
	}
	return nil
}
