// Package ctimport imports conntrack accounting CSV files (written by `netledger conntrack`
// or by the original conntrack_accounting tool) from a watched folder into a store, as the
// original's psql_insert did, but idempotently and all-or-nothing per file: a file is
// identified by the SHA-256 of its content and marked imported in the same transaction as
// its rows, so importing it again changes nothing; a file with one malformed line is moved to
// rejected/ with a report naming the line, and none of its rows are imported.
package ctimport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netledger/netledger/internal/export/ctcsv"
)

// Target receives the rows of one valid file. Import must store the rows and mark id as
// imported in one transaction; Imported tells whether id was committed before.
type Target interface {
	Imported(ctx context.Context, id string) (bool, error)
	Import(ctx context.Context, id string, rows []ctcsv.Row) error
}

// Config configures the importer.
type Config struct {
	// Watch is the folder new files arrive in (the agent's -output).
	Watch string `yaml:"watch"`
	// Move receives imported files; rejected files go to Move/rejected with a report.
	Move string `yaml:"move"`
	// Poll is how often Watch is scanned.
	Poll time.Duration `yaml:"poll"`
	// Settle is how long a file must be unmodified before it is read (the original tool
	// wrote its files in place; netledger renames complete files).
	Settle time.Duration `yaml:"settle"`
}

// DefaultConfig polls every second and lets files settle for 2 s.
func DefaultConfig() Config { return Config{Poll: time.Second, Settle: 2 * time.Second} }

// Importer watches a folder and imports its files.
type Importer struct {
	cfg     Config
	target  Target
	log     *slog.Logger
	files   *prometheus.CounterVec
	rows    prometheus.Counter
	scratch []ctcsv.Row
}

// New checks the configuration and creates the folders; it reads nothing yet.
func New(cfg Config, target Target, reg prometheus.Registerer, logger *slog.Logger) (*Importer, error) {
	if cfg.Watch == "" || cfg.Move == "" {
		return nil, errors.New("import needs a watch folder and a move folder")
	}
	if filepath.Clean(cfg.Watch) == filepath.Clean(cfg.Move) {
		return nil, errors.New("import watch and move folders must differ")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if logger == nil {
		logger = slog.Default()
	}
	for _, d := range []string{cfg.Watch, cfg.Move, filepath.Join(cfg.Move, "rejected")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create import folder: %w", err)
		}
	}
	im := &Importer{cfg: cfg, target: target, log: logger,
		files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netledger_import_files_total", Help: "CSV files handled, by result (imported, duplicate, rejected, error).",
		}, []string{"result"}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{Name: "netledger_import_rows_total", Help: "CSV rows imported."}),
	}
	for _, r := range []string{"imported", "duplicate", "rejected", "error"} {
		im.files.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(im.files, im.rows)
	}
	return im, nil
}

// Run imports what is in the folder (files that arrived while it was down), then watches it
// until ctx is done.
func (im *Importer) Run(ctx context.Context) error {
	t := time.NewTicker(im.cfg.Poll)
	defer t.Stop()
	for {
		if _, err := im.Scan(ctx, time.Now()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			im.log.Error("import scan failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Result says what happened to one file.
type Result struct {
	Name   string
	Status string // imported, duplicate, rejected, error (left in place, tried again next poll)
	Rows   int
	Err    error // the rejection reason or the error
}

// Scan handles every settled *.csv file of the watch folder once, in name (time) order. A
// file that fails (read, store or move error) gets a Result with Status "error" and the scan
// goes on with the others; the error returned joins those of all failed files.
func (im *Importer) Scan(ctx context.Context, now time.Time) ([]Result, error) {
	entries, err := os.ReadDir(im.cfg.Watch)
	if err != nil {
		return nil, fmt.Errorf("cannot read watch folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(n, ".") || !strings.HasSuffix(strings.ToLower(n), ".csv") {
			continue
		}
		if im.cfg.Settle > 0 {
			info, err := e.Info()
			if err != nil || now.Sub(info.ModTime()) < im.cfg.Settle {
				continue
			}
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Result
	var errs []error
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := im.File(ctx, n)
		if err != nil {
			// One file that cannot be read, stored or moved does not hold up the files
			// after it: it is counted, reported and left in place for the next poll.
			im.files.WithLabelValues("error").Inc()
			r.Status, r.Err = "error", err
			errs = append(errs, err)
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// ParseFile parses a whole file; the first malformed line makes it fail with a report
// naming the line. Empty lines are skipped.
func ParseFile(data []byte, rows []ctcsv.Row) ([]ctcsv.Row, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r, err := ctcsv.Parse(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w\n%s", n, err, line)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read lines: %w", err)
	}
	return rows, nil
}

// File imports one file of the watch folder by name and moves it.
func (im *Importer) File(ctx context.Context, name string) (Result, error) {
	res := Result{Name: name}
	path := filepath.Join(im.cfg.Watch, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return res, fmt.Errorf("cannot read %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	id := "ctimport:" + hex.EncodeToString(sum[:])
	rows, perr := ParseFile(data, im.scratch[:0])
	if perr != nil {
		res.Status, res.Err = "rejected", perr
		dst, err := moveUnique(path, filepath.Join(im.cfg.Move, "rejected"), name)
		if err != nil {
			return res, err
		}
		report := fmt.Sprintf("%s rejected, nothing imported: %v\n", name, perr)
		if err := os.WriteFile(dst+".error.txt", []byte(report), 0o644); err != nil {
			return res, fmt.Errorf("cannot write rejection report: %w", err)
		}
		im.files.WithLabelValues("rejected").Inc()
		im.log.Warn("rejected conntrack csv file", "file", name, "error", perr)
		return res, nil
	}
	im.scratch = rows[:0]
	done, err := im.target.Imported(ctx, id)
	if err != nil {
		return res, fmt.Errorf("cannot check import of %s: %w", name, err)
	}
	if done {
		res.Status = "duplicate"
		im.files.WithLabelValues("duplicate").Inc()
	} else {
		if err := im.target.Import(ctx, id, rows); err != nil {
			return res, fmt.Errorf("cannot import %s: %w", name, err)
		}
		res.Status, res.Rows = "imported", len(rows)
		im.files.WithLabelValues("imported").Inc()
		im.rows.Add(float64(len(rows)))
	}
	if _, err := moveUnique(path, im.cfg.Move, name); err != nil {
		return res, err
	}
	im.log.Info("imported conntrack csv file", "file", name, "rows", res.Rows, "status", res.Status)
	return res, nil
}

// moveUnique renames path into dir, adding a suffix when the name is taken.
func moveUnique(path, dir, name string) (string, error) {
	dst := filepath.Join(dir, name)
	for i := 2; ; i++ {
		_, err := os.Lstat(dst)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil { // e.g. dir is not a folder: looking for a free name would never end
			return "", fmt.Errorf("cannot move %s: %w", name, err)
		}
		dst = filepath.Join(dir, fmt.Sprintf("%s.%d", name, i))
	}
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("cannot move %s: %w", name, err)
	}
	return dst, nil
}
