package sqlite

import (
	"database/sql"
	"fmt"
)

// checkpointBytes is how much a store's writes may add to the WAL (their blobs, plus
// writeOverhead a write) before the checkpointer copies it into the database file: SQLite's
// own automatic checkpoint threshold (1,000 pages of 4 KB).
const (
	checkpointBytes = 4 << 20
	writeOverhead   = 8 << 10
)

// The writer's connection has SQLite's automatic checkpoint turned off (dsn): with it on, the
// commit that takes the WAL over 1,000 pages copies the whole WAL into the database file
// before returning — for an hour flushed at once, ≈ 7 MB copied and the database file synced
// while the collector waits for its commit. Instead, a write that takes the WAL over
// checkpointBytes kicks the checkpointer, a goroutine with its own connection that runs
// PRAGMA wal_checkpoint(PASSIVE): it copies what no reader still needs while the writer goes
// on (a PASSIVE checkpoint takes no lock a writer or reader waits for), and the writer starts
// the WAL over at its next write once it is all copied. Durability is unchanged: in WAL mode
// with synchronous=FULL a commit is durable when its frames are synced to the WAL; the
// checkpoint only moves them.

// startCheckpointer opens the checkpointer's connection and starts it.
func (s *Store) startCheckpointer() error {
	db, err := sql.Open("sqlite", dsn(s.cfg, false))
	if err != nil {
		return fmt.Errorf("cannot open store %s: %w", s.cfg.Path, err)
	}
	db.SetMaxOpenConns(1)
	s.ckpt = db
	s.kick = make(chan struct{}, 1)
	s.ckptDone = make(chan struct{})
	go func() {
		defer close(s.ckptDone)
		for range s.kick {
			var busy, frames, copied int64
			err := db.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
			s.metrics.checkpoints.WithLabelValues(result(err)).Inc()
			if err == nil && copied > 0 {
				s.metrics.checkpointFrames.Add(float64(copied))
			}
		}
	}()
	return nil
}

// wrote counts a committed write's bytes towards the WAL and kicks the checkpointer when they
// are over checkpointBytes (a kick while it is copying waits for it; more kicks are one).
func (s *Store) wrote(n int64) {
	s.walBytes += n + writeOverhead
	if s.walBytes < checkpointBytes || s.kick == nil {
		return
	}
	s.walBytes = 0
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// stopCheckpointer waits for the checkpoint under way and closes the connection (the last
// connection's close checkpoints what is left).
func (s *Store) stopCheckpointer() error {
	if s.kick == nil {
		return nil
	}
	close(s.kick)
	<-s.ckptDone
	s.kick = nil
	return s.ckpt.Close()
}
