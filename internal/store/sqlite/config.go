package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config configures the embedded store (the `store:` block of `netledger serve`).
type Config struct {
	// Path is the database file. The daemon defaults it to <data_dir>/netledger.db.
	Path string `yaml:"path"`
	// Collector names this collector in the rows it writes (rows are keyed by collector, so
	// several collectors may share a store). Empty: the host name.
	Collector string `yaml:"collector"`
	// BusyTimeout is how long a statement waits for another process's write lock.
	BusyTimeout time.Duration `yaml:"busy_timeout"`
	// Retention is how long rows are kept at each resolution (0: forever).
	Retention Retention `yaml:"retention"`
}

// Retention is how long rows are kept at each resolution, measured from the interval start;
// 0 keeps them forever.
type Retention struct {
	// Base is the retention of the views' own interval (1m by default).
	Base time.Duration `yaml:"base"`
	// Hourly is the retention of the hourly roll-ups.
	Hourly time.Duration `yaml:"hourly"`
	// Daily is the retention of the daily roll-ups.
	Daily time.Duration `yaml:"daily"`
}

// DefaultConfig returns the store defaults: 7 days at the base interval, 400 days hourly,
// daily roll-ups forever, a 5 s busy timeout.
func DefaultConfig() Config {
	return Config{
		BusyTimeout: 5 * time.Second,
		Retention: Retention{
			Base:   7 * 24 * time.Hour,
			Hourly: 400 * 24 * time.Hour,
			Daily:  0,
		},
	}
}

// WithDataDir returns c with the path defaulted to <dataDir>/netledger.db.
func (c Config) WithDataDir(dataDir string) Config {
	if c.Path == "" {
		c.Path = filepath.Join(dataDir, "netledger.db")
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("store path not set")
	case c.BusyTimeout < 0:
		return errors.New("store busy_timeout must not be negative")
	case c.Retention.Base < 0 || c.Retention.Hourly < 0 || c.Retention.Daily < 0:
		return errors.New("store retention must not be negative")
	}
	return nil
}

func (c Config) collector() (string, error) {
	if c.Collector != "" {
		return c.Collector, nil
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("store collector not set and no host name: %v", err)
	}
	return h, nil
}
