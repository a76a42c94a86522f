package spool

import (
	"errors"
	"time"
)

// Config configures a spool.
type Config struct {
	// Dir holds the segment files. The daemon defaults it to <data_dir>/spool.
	Dir string `yaml:"dir"`
	// SegmentSize is the size in bytes after which the current segment is sealed and a new one
	// started.
	SegmentSize int64 `yaml:"segment_size"`
	// SegmentAge is the age after which a segment holding data is sealed, so that retention
	// works in steps of at most this duration.
	SegmentAge time.Duration `yaml:"segment_age"`
	// SyncInterval is the group-commit interval: appended records are written and fsynced
	// together at most this long after Append returned, and become visible to readers then.
	SyncInterval time.Duration `yaml:"sync_interval"`
	// Retention is how long sealed segments are kept after their last write (for `netledger
	// replay`); 0 keeps them forever. A segment a consumer has not committed past (Spool.Hold) is
	// kept until it has.
	Retention time.Duration `yaml:"retention"`
}

// DefaultConfig returns the spool defaults: 64 MiB or one-hour segments, a 100 ms group
// commit, seven days of retention.
func DefaultConfig() Config {
	return Config{
		SegmentSize:  64 << 20,
		SegmentAge:   time.Hour,
		SyncInterval: 100 * time.Millisecond,
		Retention:    7 * 24 * time.Hour,
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("spool directory not set")
	case c.SegmentSize < headerSize+frameHeaderSize+maxRecordSize:
		return errors.New("spool segment_size too small")
	case c.SegmentAge <= 0:
		return errors.New("spool segment_age must be positive")
	case c.SyncInterval <= 0:
		return errors.New("spool sync_interval must be positive")
	case c.Retention < 0:
		return errors.New("spool retention must not be negative")
	}
	return nil
}
