package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"

	"github.com/netledger/netledger/internal/record"
)

// maxDeltas is the number of packs an interval may hold before the writing transaction
// compacts them into one; an interval that is over is compacted at the next write.
const maxDeltas = 16

// bucket is one view's interval at a level.
type bucket struct {
	level int
	start int64
	view  string
}

// groupBlobs returns the jobs encoding the groups' blobs (writeGroups'): job 2i is group i's
// data blob, 2i+1 its dims blob; nil when the group shares them. parallel: encoded on a pool of
// goroutines from now on (writeRows starts them before it inserts the series packs), else by
// writeGroups as it inserts them. s.newPacks must be set.
func (s *Store) groupBlobs(gs []group, parallel bool) *blobJobs {
	return newBlobJobs(2*len(gs), parallel, func(k int) []byte {
		g := &gs[k/2]
		switch {
		case g.same >= 0:
			return nil
		case k%2 == 0:
			return g.data()
		case g.sameDims >= 0 || s.newPackOf(g.ids) >= 0:
			return nil
		}
		return s.encodeDimsOf(g.ids)
	})
}

// writeGroups writes the groups (rollUp's: finer levels first) as one delta pack each, with
// the blobs jobs (groupBlobs') encode, then compacts the intervals holding several packs that
// are over by end (the end of the newest interval written) or hold maxDeltas packs.
func (s *Store) writeGroups(ctx context.Context, tx *sql.Tx, gs []group, jobs *blobJobs, end int64) error {
	if len(gs) == 0 {
		return s.compactOver(ctx, tx, end)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO packs (level, start, view, res, data, dims) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	blobs := make([][2]int64, len(gs)) // per group: its data and dims blob
	ends := make([]int64, len(gs))
	for i := range gs {
		g := &gs[i]
		res, ivEnd := g.res, g.start+g.res
		if g.level > levelBase {
			res, ivEnd = levelSeconds[min(g.level, levelDay)], g.start+packSeconds(g.level)
		}
		ends[i] = ivEnd
		ids := &blobs[i]
		if g.same >= 0 {
			*ids = blobs[g.same]
		} else {
			if ids[0], err = s.insertBlob(ctx, tx, jobs.get(2*i)); err != nil {
				return err
			}
			if g.sameDims >= 0 {
				ids[1] = blobs[g.sameDims][1]
			} else if p := s.newPackOf(g.ids); p >= 0 {
				ids[1] = s.newPacks[p].dims
			} else if ids[1], err = s.insertBlob(ctx, tx, jobs.get(2*i+1)); err != nil {
				return err
			}
		}
		if _, err := ins.ExecContext(ctx, g.level, g.start, g.view, res, ids[0], ids[1]); err != nil {
			return fmt.Errorf("cannot write pack: %w", err)
		}
	}
	for i := range gs {
		b := gs[i].bucket
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM packs WHERE level = ? AND view = ? AND start = ?`,
			b.level, b.view, b.start).Scan(&n); err != nil {
			return err
		}
		switch {
		case n <= 1:
		case n >= maxDeltas || ends[i] <= end:
			if err := s.compact(ctx, tx, b); err != nil {
				return err
			}
		default:
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO dirty (level, start, view, until) VALUES (?, ?, ?, ?)`,
				b.level, b.start, b.view, ends[i]); err != nil {
				return err
			}
		}
	}
	return s.compactOver(ctx, tx, end)
}

func (s *Store) insertBlob(ctx context.Context, tx *sql.Tx, b []byte) (int64, error) {
	s.txBytes += int64(len(b))
	res, err := tx.ExecContext(ctx, `INSERT INTO blobs (data) VALUES (?)`, b)
	if err != nil {
		return 0, fmt.Errorf("cannot write pack: %w", err)
	}
	return res.LastInsertId()
}

// dropBlobs deletes the blobs of ids that no pack or series pack refers to any more (all such
// blobs when ids is nil).
func dropBlobs(ctx context.Context, tx *sql.Tx, ids []int64) error {
	const orphan = `NOT EXISTS (SELECT 1 FROM packs WHERE data = blobs.id) AND NOT EXISTS (SELECT 1 FROM packs WHERE dims = blobs.id)
		AND NOT EXISTS (SELECT 1 FROM series_packs WHERE dims = blobs.id)`
	if ids == nil {
		_, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE `+orphan)
		return err
	}
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `DELETE FROM blobs WHERE id = ? AND `+orphan, id); err != nil {
			return err
		}
	}
	return nil
}

// dimsBlob returns the id of a dims blob of the series ids (ascending): that of a series pack
// of the write when they are its series (a fresh store's first commit, the series of a new
// view), else a new blob.
func (s *Store) dimsBlob(ctx context.Context, tx *sql.Tx, ids []int64) (int64, error) {
	if p := s.newPackOf(ids); p >= 0 {
		return s.newPacks[p].dims, nil
	}
	return s.insertBlob(ctx, tx, s.encodeDimsOf(ids))
}

// newPackOf returns the index in s.newPacks of the series pack of the write whose series are
// ids (ascending), or -1. It reads only the packs' first and n (the pool's groupBlobs jobs call
// it while the writer sets the packs' dims).
func (s *Store) newPackOf(ids []int64) int {
	if n := int64(len(ids)); n > 0 {
		for k := range s.newPacks { // distinct ascending ids from first to first + n - 1: all of them
			p := &s.newPacks[k]
			if p.n == n && ids[0] == p.first && ids[n-1] == p.first+n-1 {
				return k
			}
		}
	}
	return -1
}

// encodeDimsOf returns the dims blob of the series ids.
func (s *Store) encodeDimsOf(ids []int64) []byte {
	return encodeDims(len(ids), func(i int) *record.Dims { return &s.keys.at(ids[i]).dims })
}

// compactOver compacts the intervals holding several packs that are over by end.
func (s *Store) compactOver(ctx context.Context, tx *sql.Tx, end int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT level, start, view FROM dirty WHERE until <= ?`, end)
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
	for _, b := range todo {
		if err := s.compact(ctx, tx, b); err != nil {
			return err
		}
	}
	return nil
}

// compact merges the packs of an interval into one.
func (s *Store) compact(ctx context.Context, tx *sql.Tx, b bucket) error {
	s.metrics.compactions.Inc()
	return s.rewrite(ctx, tx, b.level, b.start, b.view, nil)
}

// rewrite replaces the packs of a view's interval by one holding their sums per series,
// changed by fn (when not nil) first; points whose metrics are all zero are dropped.
func (s *Store) rewrite(ctx context.Context, tx *sql.Tx, level int, start int64, view string,
	fn func(sids []int64, sums [][nMetrics]uint64)) error {
	var (
		r    packReader
		idx  = map[int64]int32{}
		sids []int64
		sums [][nMetrics]uint64
		slot []int32
		res  int64
		old  []int64 // the blobs of the packs replaced
	)
	rows, err := tx.QueryContext(ctx, `SELECT p.res, p.data, p.dims, b.data FROM packs p CROSS JOIN blobs b ON b.id = p.data
		WHERE p.level = ? AND p.view = ? AND p.start = ?`, level, view, start)
	if err != nil {
		return err
	}
	for rows.Next() {
		var pres, dataID, dimsID int64
		var data sql.RawBytes
		if err = rows.Scan(&pres, &dataID, &dimsID, &data); err != nil {
			break
		}
		res = max(res, pres)
		old = append(old, dataID, dimsID)
		if err = r.reset(data); err != nil {
			break
		}
		slot = slot[:0]
		for _, sid := range r.sids {
			k, ok := idx[sid]
			if !ok {
				k = int32(len(sids))
				idx[sid] = k
				sids = append(sids, sid)
				sums = append(sums, [nMetrics]uint64{})
			}
			slot = append(slot, k)
		}
		if err = r.addMetrics(slot, sums); err != nil {
			break
		}
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return fmt.Errorf("cannot read packs %d/%d of %s: %w", level, start, view, err)
	}
	if fn != nil {
		fn(sids, sums)
	}
	order := make([]int32, 0, len(sids))
	for k := range sids {
		if sums[k] != ([nMetrics]uint64{}) {
			order = append(order, int32(k))
		}
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(sids[a], sids[b]) })
	if _, err := tx.ExecContext(ctx, `DELETE FROM packs WHERE level = ? AND view = ? AND start = ?`, level, view, start); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM dirty WHERE level = ? AND view = ? AND start = ?`, level, view, start); err != nil {
		return err
	}
	if len(order) > 0 {
		ms := make([]record.Metrics, len(order))
		b := &packBuilder{res: res, ids: make([]int64, 0, len(order)), ms: make([]*record.Metrics, 0, len(order))}
		for i, k := range order {
			ms[i] = metricsFrom(&sums[k])
			b.add(sids[k], &ms[i])
		}
		data, err := s.insertBlob(ctx, tx, b.data())
		if err != nil {
			return err
		}
		dims, err := s.dimsBlob(ctx, tx, b.ids)
		if err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `INSERT INTO packs (level, start, view, res, data, dims) VALUES (?, ?, ?, ?, ?, ?)`,
			level, start, view, res, data, dims); err != nil {
			return err
		}
	}
	return dropBlobs(ctx, tx, old)
}

// packIntervals returns the views' intervals at level with packs starting in [lo, hi).
func packIntervals(ctx context.Context, tx *sql.Tx, level int, lo, hi int64) ([]bucket, error) {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT view, start FROM packs WHERE level = ? AND start >= ? AND start < ?`, level, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []bucket
	for rows.Next() {
		b := bucket{level: level}
		if err := rows.Scan(&b.view, &b.start); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}
