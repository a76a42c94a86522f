package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

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
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := s.syncSeries(ctx, tx); err != nil {
		tx.Rollback()
		return err
	}
	s.newPacks, s.txBytes = s.newPacks[:0], 0
	err = fn(tx)
	if err == nil {
		err = tx.Commit()
	} else {
		tx.Rollback()
	}
	if err != nil { // a failed write forgets the series it added
		for id := s.maxSid + 1; id < int64(s.keys.len()); id++ {
			s.index.forget(&s.keys, id)
		}
		s.keys.truncate(int(s.maxSid) + 1)
		return err
	}
	s.maxSid = int64(s.keys.len()) - 1
	s.wrote(s.txBytes)
	return nil
}

// writeRows adds rows (merged within the batch first) to one delta pack per view, level and
// interval they touch, and compacts the intervals that are over or hold many packs.
func (s *Store) writeRows(ctx context.Context, tx *sql.Tx, collector string, rows []record.Row) error {
	// A large write (an hour flushed at once) encodes its new series while this goroutine
	// groups the rows, and its packs while this goroutine inserts the finished blobs.
	parallel := len(rows) >= parallelRows
	first := int64(s.keys.len())
	s.seriesIDs(collector, rows, parallel)
	s.newPacks = s.seriesRanges(first, int64(s.keys.len()))
	// Per series pack three jobs: the two halves of its dims blob (the longest job first), and
	// its head. A job reads only its pack's first and n: the writer sets dims meanwhile.
	series := newBlobJobs(3*len(s.newPacks), parallel, func(i int) []byte {
		p := &s.newPacks[i/3]
		first, n := p.first, int(p.n)
		key := func(i int) *seriesKey { return s.keys.at(first + int64(i)) }
		dims := func(i int) *record.Dims { return &key(i).dims }
		switch i % 3 {
		case 0:
			return dimsFront(n, dims)
		case 1:
			return dimsBack(n, dims)
		}
		return seriesHead(seriesVersionDims, n, key)
	})
	defer series.wait()
	gs, end, err := s.grouper.group(rows, s.rowSids)
	if err != nil {
		return err
	}
	// The groups' blobs are encoded while this goroutine waits for the series packs and
	// inserts them.
	blobs := s.groupBlobs(gs, parallel)
	defer blobs.wait()
	for i := range s.newPacks {
		p := &s.newPacks[i]
		dims := append(series.get(3*i), series.get(3*i+1)...)
		if p.dims, err = s.insertBlob(ctx, tx, dims); err != nil {
			return err
		}
		pack := series.get(3*i + 2)
		s.txBytes += int64(len(pack))
		if _, err := tx.ExecContext(ctx, `INSERT INTO series_packs (first, n, data, dims) VALUES (?, ?, ?, ?)`,
			p.first, p.n, pack, p.dims); err != nil {
			return fmt.Errorf("cannot write series: %w", err)
		}
	}
	return s.writeGroups(ctx, tx, gs, blobs, end)
}

// sortPoints sorts points in key order: level, start, series id.
func sortPoints(ps []point) { slices.SortFunc(ps, cmpPoint) }

func cmpPoint(a, b point) int {
	if a.level != b.level {
		return a.level - b.level
	}
	if a.start != b.start {
		return cmpInt(a.start, b.start)
	}
	return cmpInt(a.sid, b.sid)
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

// syncSeries brings the in-memory series index up to date inside a write transaction: the
// series stored with ids above the highest known (all of them at the first write; afterwards
// only those another process added). Series are never deleted, and BEGIN IMMEDIATE holds the
// database's write lock, so the index is complete until the transaction ends.
func (s *Store) syncSeries(ctx context.Context, tx *sql.Tx) error {
	if s.index.len() == 0 { // the first write: room for every stored series
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(n), 0) FROM series_packs`).Scan(&n); err != nil {
			return fmt.Errorf("cannot read series: %w", err)
		}
		if n > 0 {
			s.index.reset(n)
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT s.first, s.data, b.data FROM series_packs s LEFT JOIN blobs b ON b.id = s.dims
		WHERE s.first > ? ORDER BY s.first`, s.maxSid)
	if err != nil {
		return fmt.Errorf("cannot read series: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var first int64
		var data, dims []byte
		if err := rows.Scan(&first, &data, &dims); err != nil {
			return fmt.Errorf("cannot read series: %w", err)
		}
		keys, err := decodeSeries(data, dims)
		if err != nil {
			return fmt.Errorf("series pack %d: %w", first, err)
		}
		if first != int64(s.keys.len()) {
			return fmt.Errorf("series pack %d: the index ends at %d", first, s.keys.len()-1)
		}
		for i, k := range keys {
			s.keys.add(k)
			s.index.add(&s.keys, &k, first+int64(i))
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read series: %w", err)
	}
	s.maxSid = int64(s.keys.len()) - 1
	return nil
}

// seriesIDs sets s.rowSids[i] to row i's series id, and gives the series not in the index the
// next free ids, adding them to the index (writeRows stores their keys in series packs). The
// in-memory index (syncSeries) is the only guard of a key's uniqueness: the store is the
// database's one writer while it holds the write lock. parallel: the keys are hashed on
// GOMAXPROCS goroutines first.
func (s *Store) seriesIDs(collector string, rows []record.Row, parallel bool) {
	s.rowSids = slices.Grow(s.rowSids[:0], len(rows))[:len(rows)]
	clear(s.rowSids)
	if s.index.len() == 0 { // the first series of a store: room for a batch of new ones
		s.index.reset(len(rows))
	}
	live := func(r *record.Row) bool { return !r.Metrics.Zero() && r.View != "" } // the row has a series
	if parallel {
		s.rowHashes = slices.Grow(s.rowHashes[:0], len(rows))[:len(rows)]
		hashAll(len(rows), s.rowHashes, func(i int) uint64 {
			r := &rows[i]
			if !live(r) {
				return 0
			}
			k := seriesKey{r.View, collector, r.Dims}
			return s.index.hashKey(&k)
		})
	}
	// Rows go in blocks whose hashes are computed and their slots prefetched first, then the
	// keys of the ids found (checked against the rows' keys), so that the cache misses of a
	// block overlap.
	const block = 16
	var (
		ks [block]seriesKey
		hs [block]uint64
		ok [block]bool // live
	)
	for lo := 0; lo < len(rows); lo += block {
		hi := min(lo+block, len(rows))
		for i := lo; i < hi; i++ {
			r := &rows[i]
			if ok[i-lo] = live(r); ok[i-lo] {
				ks[i-lo] = seriesKey{r.View, collector, r.Dims}
				if parallel {
					hs[i-lo] = s.rowHashes[i]
				} else {
					hs[i-lo] = s.index.hashKey(&ks[i-lo])
				}
				s.index.byHash.prefetch(hs[i-lo])
			}
		}
		for i := lo; i < hi; i++ {
			if !ok[i-lo] {
				continue
			}
			if id, ok := s.index.byHash.get(hs[i-lo]); ok {
				s.keys.prefetch(id)
			}
		}
		for i := lo; i < hi; i++ {
			if !ok[i-lo] {
				continue
			}
			id, found := s.index.id(&s.keys, &ks[i-lo], hs[i-lo], int64(s.keys.len()))
			if !found {
				s.keys.add(ks[i-lo])
			}
			s.rowSids[i] = id
		}
	}
}

// seriesRange is a series pack of a write: the ids first to first + n - 1, and its dims blob.
type seriesRange struct {
	first, n, dims int64
}

// minViewPack is the number of new series of one view that get a series pack of their own.
const minViewPack = 1024

// seriesRanges splits the new series [first, end) into series packs: a run of at least
// minViewPack series of one view (the rows come view by view) is a pack of its own, whose dims
// blob the view's packs of the write share; shorter runs share packs.
func (s *Store) seriesRanges(first, end int64) []seriesRange {
	var out []seriesRange
	from := first // the start of the pack under way
	for lo := first; lo < end; {
		hi := lo + 1
		for hi < end && s.keys.at(hi).view == s.keys.at(lo).view {
			hi++
		}
		if hi-lo >= minViewPack {
			if from < lo {
				out = append(out, seriesRange{first: from, n: lo - from})
			}
			out = append(out, seriesRange{first: lo, n: hi - lo})
			from = hi
		}
		lo = hi
	}
	if from < end {
		out = append(out, seriesRange{first: from, n: end - from})
	}
	return out
}

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

// deleteRange deletes this collector's points in [from, to), level by level from the finest:
// first each point loses what the deleted finer points contributed to it, then the points of
// the intervals wholly inside the range are deleted, and what remains of them (rows written
// at that level directly) is subtracted from the coarser levels in turn.
func (s *Store) deleteRange(ctx context.Context, tx *sql.Tx, from, to int64) error {
	var sub [packLevels]map[pointKey]*[nMetrics]uint64
	for l := range packLevels {
		sub[l] = map[pointKey]*[nMetrics]uint64{}
	}
	for l := range packLevels {
		lo, wlo, whi := from, from, to // intervals touched; intervals wholly inside
		if l > levelBase {
			r := packSeconds(l)
			lo, wlo, whi = floorTo(from, r), ceilTo(from, r), floorTo(to, r)
		}
		ivs, err := packIntervals(ctx, tx, l, lo, to)
		if err != nil {
			return err
		}
		for _, iv := range ivs {
			whole := iv.start >= wlo && iv.start < whi
			err := s.rewrite(ctx, tx, l, iv.start, iv.view, func(sids []int64, sums [][nMetrics]uint64) {
				for k, sid := range sids {
					m := &sums[k]
					if d, ok := sub[l][pointKey{l, iv.start, sid}]; ok {
						for c := range m {
							m[c] -= d[c]
						}
					}
					if !whole || s.keys.at(sid).collector != s.collector {
						continue
					}
					for c := l + 1; c < packLevels; c++ {
						ck := pointKey{c, floorTo(iv.start, packSeconds(c)), sid}
						acc := sub[c][ck]
						if acc == nil {
							acc = &[nMetrics]uint64{}
							sub[c][ck] = acc
						}
						for i, v := range m {
							acc[i] += v
						}
					}
					*m = [nMetrics]uint64{}
				}
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
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

// Expire deletes the packs older than each resolution's retention (by interval start; the
// weeks with the days).
func (s *Store) Expire(ctx context.Context, now time.Time) error {
	ret := [levels]time.Duration{s.cfg.Retention.Base, s.cfg.Retention.Hourly, s.cfg.Retention.Daily}
	t0 := time.Now()
	err := s.write(ctx, func(tx *sql.Tx) error {
		for l := range levels {
			if ret[l] <= 0 {
				continue
			}
			cut := now.Add(-ret[l]).Unix()
			lv := []int{l}
			if l == levelDay {
				lv = append(lv, levelWeek)
			}
			for _, l := range lv {
				res, err := tx.ExecContext(ctx, `DELETE FROM packs WHERE level = ? AND start < ?`, l, cut)
				if err != nil {
					return err
				}
				n, _ := res.RowsAffected()
				s.metrics.expired.WithLabelValues(levelName[l]).Add(float64(n))
				if _, err := tx.ExecContext(ctx, `DELETE FROM dirty WHERE level = ? AND start < ?`, l, cut); err != nil {
					return err
				}
			}
		}
		return dropBlobs(ctx, tx, nil) // those of the packs deleted
	})
	s.metrics.observe("expire", 0, t0, err)
	if err != nil {
		return fmt.Errorf("cannot expire rows: %w", err)
	}
	return nil
}
