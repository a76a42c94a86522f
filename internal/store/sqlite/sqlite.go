// Package sqlite is the embedded store: view rows in one SQLite file (modernc.org/sqlite, pure
// Go), written in WAL mode by one writer while any number of readers query.
//
// Schema (migrations/0005_delta_packs.sql, 0006): every level — the views' base interval,
// hourly, daily, and weekly sums of the days — is stored as packs: the points of one view at
// one interval start, column-wise in two blobs (pack.go: series ids and metrics in data, their
// dimensions in dims; blobs that several packs of a write share are stored once, in blobs). A
// commit groups its rows per view, level and interval start in memory (group.go: a coarser
// interval fed by one finer group is that group, blobs included) and appends one delta pack per
// group with the commit's sums, in one transaction with the consumer's spool position; queries
// add up all the packs of an interval. An interval's packs are merged into one (compacted) by
// the write that finds the interval over or holding maxDeltas packs (packwrite.go). Series are
// interned as integer ids: the writer keeps every series' key and id in memory (a hash index,
// series.go; loaded at its first write, topped up from the database inside each write
// transaction, where another process's new series are seen) and stores the keys of the series a
// write creates as series packs, whose dims blobs the write's packs of the same series share.
// A write of many rows (an hour flushed at once) hashes its keys and encodes its blobs on a
// pool of goroutines while the writer groups the rows and inserts the finished blobs in the
// serial order (encode.go); the WAL is copied into the database file by a checkpointer of its
// own, not inside the commit (checkpoint.go).
// Queries answer from the coarsest resolution whose interval boundaries cover the range exactly
// and fill the edges from finer ones.
//
// Migrations are embedded SQL files applied in order, each in its own transaction (with a Go
// step for those that convert data, migrate.go), recorded in schema_migrations.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/netledger/netledger/internal/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Store is the SQLite store. It implements store.Store and store.Importer.
type Store struct {
	cfg       Config
	collector string
	w         *sql.DB // one connection, BEGIN IMMEDIATE
	r         *sql.DB // readers, query_only
	fault     func(store.Batch) error
	now       func() time.Time
	metrics   *metrics

	wmu       sync.Mutex    // serialises writers in this process; guards the fields below
	index     seriesIndex   // every stored series' id by key (syncSeries)
	keys      keyIndex      // by id (0 unused): committed series, then those of the write under way
	maxSid    int64         // the highest id of committed series
	rowSids   []int64       // per row of the batch being written: its series id, 0 unknown
	rowHashes []uint64      // per row of a large batch: its key's hash (seriesIDs)
	grouper   grouper       // writeRows' buffers
	newPacks  []seriesRange // the series packs of the write under way
	txBytes   int64         // the blob bytes of the write under way
	walBytes  int64         // the bytes written since the checkpointer was last kicked

	ckpt     *sql.DB       // the checkpointer's connection (checkpoint.go)
	kick     chan struct{} // a checkpoint is due
	ckptDone chan struct{} // closed when the checkpointer has stopped
	savePos  *sql.Stmt
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Importer = (*Store)(nil)
)

// Option changes how Open builds the store.
type Option func(*Store)

// WithCommitFault installs a fault-injection hook for tests. Commit, Replace and Import call
// fault inside their transaction after the batch's rows (and roll-ups) are written and before
// the consumer's position (or the import id) is saved; a non-nil error aborts the transaction,
// so that neither the rows nor the position are stored and Commit returns the error. The
// exactly-once tests use it to crash between rows and checkpoint. Never set it in production.
func WithCommitFault(fault func(store.Batch) error) Option {
	return func(s *Store) { s.fault = fault }
}

// WithClock sets the clock used to choose resolutions (tests).
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// Open opens (creating it if needed) the database at cfg.Path and applies pending migrations.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	collector, err := cfg.collector()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, fmt.Errorf("cannot create store directory: %w", err)
	}
	s := &Store{
		cfg:       cfg,
		collector: collector,
		now:       time.Now,
		metrics:   newMetrics(),
		index:     newSeriesIndex(),
	}
	s.keys.add(seriesKey{}) // id 0
	for _, o := range opts {
		o(s)
	}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	s.w, err = sql.Open("sqlite", dsn(cfg, false))
	if err != nil {
		return nil, fmt.Errorf("cannot open store %s: %w", cfg.Path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, s.w, -1); err != nil {
		return nil, fmt.Errorf("cannot migrate store %s: %w", cfg.Path, err)
	}
	s.r, err = sql.Open("sqlite", dsn(cfg, true))
	if err != nil {
		return nil, fmt.Errorf("cannot open store %s: %w", cfg.Path, err)
	}
	s.r.SetMaxOpenConns(4)
	if err := s.prepare(ctx); err != nil {
		return nil, err
	}
	if err := s.startCheckpointer(); err != nil {
		return nil, err
	}
	s.wrote(checkpointBytes) // what a migration wrote
	ok = true
	return s, nil
}

func dsn(cfg Config, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		// Packs are megabytes: read them through the page cache's mmap, not page by page.
		q.Add("_pragma", "mmap_size(4294967296)")
	} else {
		// FULL: a committed position survives a power loss, so the spool behind it may go.
		q.Add("_pragma", "synchronous(FULL)")
		// A small page cache (2 MiB): a large commit (an hour of a fresh store: ≈ 6 MB of
		// blobs, nearly all overflow pages written once) spills its dirty pages to the WAL as
		// it inserts them (frames of no commit, invisible to readers and to recovery until the
		// commit's frame is synced) and reuses their memory, instead of growing the cache into
		// fresh memory page by page (an allocation and page faults each, and the unmapping at
		// close) and writing every frame at the commit. Measured (docs/benchmarks.md, "Store
		// commit of a fresh hour"): cheaper than a 128 MiB cache for large and small commits.
		q.Add("_pragma", "cache_size(-2048)")
		// Multi-row statements keep a statement journal: in memory, not a temporary file.
		q.Add("_pragma", "temp_store(MEMORY)")
		// The WAL is copied into the database file by the checkpointer, not by the commit
		// that takes it over 1,000 pages (checkpoint.go).
		q.Add("_pragma", "wal_autocheckpoint(0)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: cfg.Path}).EscapedPath() + "?" + q.Encode()
}

// Close closes the database.
func (s *Store) Close() error {
	s.wmu.Lock() // after the write under way
	defer s.wmu.Unlock()
	errs := []error{s.stopCheckpointer()}
	if s.r != nil {
		errs = append(errs, s.r.Close())
		s.r = nil
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
		s.w = nil
	}
	return errors.Join(errs...)
}

// Collector returns the collector name the store writes its rows under.
func (s *Store) Collector() string { return s.collector }

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var ms []migration
	for _, n := range names {
		base := filepath.Base(n)
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: no version number", base)
		}
		if len(ms) > 0 && ms[len(ms)-1].version >= v {
			return nil, fmt.Errorf("migration %s: version out of order", base)
		}
		data, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(data)})
	}
	return ms, nil
}

// migrate applies the migrations not yet recorded in schema_migrations, in order, each in its
// own transaction; upTo < 0 applies all (tests stop earlier to build old databases).
func migrate(ctx context.Context, db *sql.DB, upTo int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return err
	}
	if known := ms[len(ms)-1].version; newest.Valid && newest.Int64 > int64(known) {
		return fmt.Errorf("database schema version %d is newer than this netledger's (%d)", newest.Int64, known)
	}
	for _, m := range ms {
		if upTo >= 0 && m.version > upTo {
			break
		}
		if err := applyMigration(ctx, db, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil // applied before (or by a concurrent process)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if fn := goMigrations[m.version]; fn != nil {
		if err := fn(ctx, tx); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().Unix()); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion returns the newest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Position returns the consumer's saved position (zero when none).
func (s *Store) Position(ctx context.Context, consumer string) (store.Position, error) {
	var p store.Position
	err := s.r.QueryRowContext(ctx, `SELECT segment, offset FROM positions WHERE consumer = ?`, consumer).
		Scan(&p.Segment, &p.Offset)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Position{}, nil
	}
	if err != nil {
		return p, fmt.Errorf("cannot read position of %s: %w", consumer, err)
	}
	return p, nil
}

// Imported reports whether the file id was imported before.
func (s *Store) Imported(ctx context.Context, id string) (bool, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM imports WHERE id = ?`, id).Scan(&n); err != nil {
		return false, fmt.Errorf("cannot look up import %s: %w", id, err)
	}
	return n > 0, nil
}
