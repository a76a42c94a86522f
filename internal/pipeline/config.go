package pipeline

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/netledger/netledger/internal/aggregate"
)

// Config is the `accounting:` block of the configuration.
type Config struct {
	// Interval is the length of the views' base intervals (1m).
	Interval time.Duration `yaml:"interval"`
	// CommitInterval is how often rows and the spool position are committed to the store
	// (1s): the longest a record waits before queries see it.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// NoDefaultViews drops the default views (prefix, country, as_path, origin, router,
	// conntrack); Views are kept.
	NoDefaultViews bool `yaml:"no_default_views"`
	// Views are more views; one named like a default view replaces it.
	Views []aggregate.ViewConfig `yaml:"views"`
	// Workers is the number of goroutines that decode, enrich and aggregate records, each
	// with a client cache and view tables of its own, merged at every commit (0: one per core,
	// at most defaultMaxWorkers).
	Workers int `yaml:"workers"`
}

// workers returns the number of workers to start.
func (c Config) workers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return min(runtime.GOMAXPROCS(0), defaultMaxWorkers)
}

// defaultMaxWorkers caps the default number of workers: every commit merges the workers' tables
// on one core (about 35 ns a key), and four workers account well over ten million records a
// second, far more than the sources deliver; more cores are left to them.
const defaultMaxWorkers = 4

// DefaultConfig returns the defaults: 1-minute intervals committed every second.
func DefaultConfig() Config {
	return Config{Interval: aggregate.DefaultInterval, CommitInterval: time.Second}
}

// EffectiveViews returns the default views merged with the configured ones.
func (c Config) EffectiveViews() []aggregate.ViewConfig {
	return aggregate.Merge(c.NoDefaultViews, c.Views)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Interval < time.Second || c.Interval%time.Second != 0 || (24*time.Hour)%c.Interval != 0 {
		return fmt.Errorf("accounting.interval %s must be a whole number of seconds dividing a day", c.Interval)
	}
	if c.Workers < 0 {
		return errors.New("accounting.workers must not be negative")
	}
	if c.CommitInterval <= 0 {
		return errors.New("accounting.commit_interval must be positive")
	}
	views := c.EffectiveViews()
	if len(views) == 0 {
		return errors.New("accounting: no views (no_default_views without views)")
	}
	if err := aggregate.Validate(views); err != nil {
		return fmt.Errorf("accounting: %w", err)
	}
	return nil
}
