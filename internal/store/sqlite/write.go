package sqlite

import (
	"context"
	"database/sql"
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
	if s.seriesMany, err = s.w.PrepareContext(ctx, seriesInsert(seriesChunk)); err != nil {
		return fmt.Errorf("cannot prepare series statement: %w", err)
	}
	for l := range levels {
		if s.upsert[l], err = s.w.PrepareContext(ctx, upsertSQL(l, chunk)); err != nil {
			return fmt.Errorf("cannot prepare upsert: %w", err)
		}
	}
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
	err := s.write(ctx, func(tx *sql.Tx, pending map[seriesKey]int64) error {
		if err := s.writeRows(ctx, tx, s.collector, b.Rows, pending); err != nil {
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

// write runs fn in a write transaction, with the series index synced to the database; series
// ids fn creates (pending) join the index only once the transaction has committed.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx, pending map[seriesKey]int64) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.w == nil {
		return errors.New("store closed")
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := s.syncSeries(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	pending := map[seriesKey]int64{}
	if err := fn(tx, pending); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for k, id := range pending {
		s.sids[k] = id
		s.maxSid = max(s.maxSid, id)
	}
	return nil
}

// writeRows adds rows (merged within the batch first) to their points and roll-ups, drops the
// packs of the hours and days written to, and packs the hours and days that are over.
func (s *Store) writeRows(ctx context.Context, tx *sql.Tx, collector string, rows []record.Row, pending map[seriesKey]int64) error {
	clear(s.acc)
	s.points = slices.Grow(s.points[:0], 3*len(rows)) // a base, hourly and daily point per row at most
	touched := map[bucket]struct{}{}
	var end int64
	if err := s.seriesIDs(ctx, tx, collector, rows, pending); err != nil {
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
				touched[bucket{l, st, r.View}] = struct{}{}
				if l == levelDay {
					touched[bucket{levelWeek, floorTo(start, weekSeconds), r.View}] = struct{}{}
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
	// Runs of one level go out in statements of up to chunk rows.
	args := s.args[:0]
	for i := 0; i < len(s.points); {
		l := s.points[i].level
		j := i
		for j < len(s.points) && j-i < chunk && s.points[j].level == l {
			j++
		}
		args = args[:0]
		for k := i; k < j; k++ {
			p := &s.points[k]
			args = append(args, p.start, p.sid)
			if l == levelBase {
				args = append(args, p.res)
			}
			args = appendMetrics(args, &p.m)
		}
		if j-i == chunk {
			_, err = tx.StmtContext(ctx, s.upsert[l]).ExecContext(ctx, args...)
		} else { // the rest of the run: one statement prepared for it
			_, err = tx.ExecContext(ctx, upsertSQL(l, j-i), args...)
		}
		if err != nil {
			return fmt.Errorf("cannot write %s: %w", levelTable[l], err)
		}
		i = j
	}
	s.args = args[:0]
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

// chunk is the number of points per upsert statement: one statement per point costs more in
// database/sql and the VDBE set-up than the point itself.
const chunk = 64

// upsertSQL is the upsert of n points into level's table.
func upsertSQL(level, n int) string {
	cols, ph := "start, sid, "+metricColumns, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	set := addMetrics
	if level == levelBase {
		cols, ph = "start, sid, res, "+metricColumns, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
		set = "res = excluded.res, " + addMetrics
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + levelTable[level] + " (" + cols + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ph)
	}
	b.WriteString(" ON CONFLICT (start, sid) DO UPDATE SET " + set)
	return b.String()
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

// seriesChunk is the number of series per insert statement of seriesIDs (16 parameters each).
const seriesChunk = 128

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
		if d.Prefix, err = decodePrefix(prefix); err != nil {
			return err
		}
		if d.SrcGroup, err = decodeAddr(src); err != nil {
			return err
		}
		if d.DstGroup, err = decodeAddr(dst); err != nil {
			return err
		}
		s.sids[k] = id
		s.maxSid = max(s.maxSid, id)
	}
	return rows.Err()
}

// seriesIDs sets s.rowSids[i] to row i's series id, and inserts the series that are neither
// known nor pending with the next free ids, seriesChunk per statement, adding them to pending.
// The in-memory index (syncSeries) is the only guard of a key's uniqueness: the store is the
// database's one writer while it holds the write lock.
func (s *Store) seriesIDs(ctx context.Context, tx *sql.Tx, collector string, rows []record.Row, pending map[seriesKey]int64) error {
	s.rowSids = slices.Grow(s.rowSids[:0], len(rows))[:len(rows)]
	clear(s.rowSids)
	next := s.maxSid + int64(len(pending)) + 1
	args := s.args[:0]
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		var err error
		if n == seriesChunk {
			_, err = tx.StmtContext(ctx, s.seriesMany).ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, seriesInsert(n), args...)
		}
		args, n = args[:0], 0
		if err != nil {
			return fmt.Errorf("cannot write series: %w", err)
		}
		return nil
	}
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
		if id, ok := pending[k]; ok {
			s.rowSids[i] = id
			continue
		}
		id := next
		next++
		pending[k] = id
		s.rowSids[i] = id
		d := &r.Dims
		args = append(args, id, r.View, collector, d.Router, d.Class, encodePrefix(d.Prefix), d.Path, int64(d.PeerAS),
			int64(d.OriginAS), int64(d.ASN), d.Country, d.Region, int64(d.Proto), encodeAddr(d.SrcGroup),
			encodeAddr(d.DstGroup), int64(d.Port))
		if n++; n == seriesChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	err := flush()
	s.args = args[:0]
	return err
}

// seriesColumns are the series table's key columns, in the order of seriesInsert's parameters
// after the id.
const seriesColumns = "view, collector, router, class, prefix, path, peer_as, origin_as, asn, country, region, proto, src_group, dst_group, port"

// seriesInsert is the insert of n series with their ids.
func seriesInsert(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO series (id, " + seriesColumns + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	return b.String()
}

// Replace deletes this collector's rows with starts in [from, to) at every resolution — the
// base rows in the range, the roll-ups of whole hours and days inside it, and the base rows'
// share of the roll-ups of the partly covered hours and days — and writes b, in one
// transaction (netledger replay). Imported rows (collector "<collector>/import") stay.
func (s *Store) Replace(ctx context.Context, from, to time.Time, b store.Batch) error {
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx, pending map[seriesKey]int64) error {
		if err := s.deleteRange(ctx, tx, from.Unix(), to.Unix()); err != nil {
			return err
		}
		if err := s.writeRows(ctx, tx, s.collector, b.Rows, pending); err != nil {
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
	err := s.write(ctx, func(tx *sql.Tx, pending map[seriesKey]int64) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM imports WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if err := s.writeRows(ctx, tx, s.ImportCollector(), rows, pending); err != nil {
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
	err := s.write(ctx, func(tx *sql.Tx, _ map[seriesKey]int64) error {
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
