package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Checkpoint is a consumer's committed position kept in a small file that is replaced
// atomically (write, fsync, rename, fsync the directory). Consumers that keep no store of
// their own use it; the accounting store commits its position in its own transactions instead.
type Checkpoint struct {
	// Path is the checkpoint file.
	Path string
}

// Load returns the committed position, or the zero Position (the oldest record kept) when
// nothing was committed yet.
func (c Checkpoint) Load() (Position, error) {
	data, err := os.ReadFile(c.Path)
	if errors.Is(err, os.ErrNotExist) {
		return Position{}, nil
	}
	if err != nil {
		return Position{}, fmt.Errorf("cannot read spool checkpoint: %w", err)
	}
	var p Position
	if _, err := fmt.Sscanf(string(data), "netledger-spool-checkpoint 1 %d %d\n", &p.Segment, &p.Offset); err != nil {
		return Position{}, fmt.Errorf("cannot parse spool checkpoint %s: %w", c.Path, err)
	}
	return p, nil
}

// Save commits p durably, replacing the previous checkpoint atomically.
func (c Checkpoint) Save(p Position) error {
	tmp := c.Path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("cannot create spool checkpoint: %w", err)
	}
	_, err = fmt.Fprintf(f, "netledger-spool-checkpoint 1 %d %d\n", p.Segment, p.Offset)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write spool checkpoint: %w", err)
	}
	if err := os.Rename(tmp, c.Path); err != nil {
		return fmt.Errorf("cannot replace spool checkpoint: %w", err)
	}
	return syncDir(filepath.Dir(c.Path))
}
