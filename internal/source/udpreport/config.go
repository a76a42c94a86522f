package udpreport

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/netledger/netledger/internal/report"
)

// Config configures the report collector.
type Config struct {
	// Listen is the UDP address reports are received on: loopback by default; "[::]:8789"
	// receives IPv4 and IPv6 from everywhere.
	Listen string `yaml:"listen"`
	// Workers is the number of receiving sockets (SO_REUSEPORT) and goroutines.
	Workers int `yaml:"workers"`
	// ReceiveBuffer is each socket's SO_RCVBUF in bytes (forced past rmem_max when root).
	ReceiveBuffer int `yaml:"receive_buffer"`
	// Batch is how many datagrams one recvmmsg call reads at most.
	Batch int `yaml:"batch"`
	// MaxDatagram is the largest datagram accepted, in bytes.
	MaxDatagram int `yaml:"max_datagram"`
	// Window is how far a datagram's timestamp may be from the collector's clock.
	Window time.Duration `yaml:"window"`
	// Keys are the v2 HMAC keys accepted at once (several during a rotation). SIGHUP reloads
	// them from the configuration file.
	Keys []KeyConfig `yaml:"keys"`
	// V1 accepts trafstat v1 datagrams.
	V1 V1Config `yaml:"v1"`
	// Classes names the traffic class ids senders put in reports (trafstat's traffic types),
	// e.g. {1: web, 2: video}, for views and the API. Reports of unnamed classes are kept.
	Classes map[uint16]string `yaml:"classes"`
}

// ClassName returns the configured name of class id, or the id in decimal.
func (c Config) ClassName(id uint16) string {
	if name, ok := c.Classes[id]; ok {
		return name
	}
	return strconv.Itoa(int(id))
}

// KeyConfig is one v2 key.
type KeyConfig struct {
	// ID is the key id senders put in their datagrams.
	ID uint32 `yaml:"id"`
	// Secret is the shared secret, at least 16 bytes.
	Secret string `yaml:"secret"`
}

// V1Config configures trafstat v1 compatibility.
type V1Config struct {
	// Enabled accepts v1 datagrams.
	Enabled bool `yaml:"enabled"`
	// Secret is trafstat's shared secret (at most 20 bytes).
	Secret string `yaml:"secret"`
}

// DefaultConfig returns the collector defaults: loopback port 8789, two workers, 8 MiB
// receive buffers, 64-datagram batches, ±20 s window, no keys, v1 off.
func DefaultConfig() Config {
	return Config{
		Listen:        "127.0.0.1:8789",
		Workers:       2,
		ReceiveBuffer: 8 << 20,
		Batch:         64,
		MaxDatagram:   9000,
		Window:        20 * time.Second,
	}
}

// Validate checks the configuration, keys included.
func (c Config) Validate() error {
	if _, err := netip.ParseAddrPort(c.Listen); err != nil {
		return fmt.Errorf("report listen address: %w", err)
	}
	switch {
	case c.Workers < 1 || c.Workers > 64:
		return errors.New("report workers must be within 1..64")
	case c.ReceiveBuffer < 0:
		return errors.New("report receive_buffer must not be negative")
	case c.Batch < 1 || c.Batch > 1024:
		return errors.New("report batch must be within 1..1024")
	case c.MaxDatagram < report.V1Size || c.MaxDatagram > 65507:
		return fmt.Errorf("report max_datagram must be within %d..65507", report.V1Size)
	case c.Window <= 0:
		return errors.New("report window must be positive")
	}
	if _, err := report.NewVerifier(c.keys()); err != nil {
		return fmt.Errorf("report keys: %w", err)
	}
	if c.V1.Enabled {
		if _, err := report.NewV1(c.V1.Secret); err != nil {
			return fmt.Errorf("report v1: %w", err)
		}
	}
	seen := map[string]uint16{}
	for id, name := range c.Classes {
		if name == "" {
			return fmt.Errorf("report class %d has an empty name", id)
		}
		if other, dup := seen[name]; dup {
			return fmt.Errorf("report classes %d and %d are both named %q", other, id, name)
		}
		seen[name] = id
	}
	return nil
}

func (c Config) keys() []report.Key {
	keys := make([]report.Key, len(c.Keys))
	for i, k := range c.Keys {
		keys[i] = report.Key{ID: k.ID, Secret: []byte(k.Secret)}
	}
	return keys
}
