// Package daemon builds netledger's pipeline from one configuration struct and runs its
// components. It is the only package that knows the order of the stages.
package daemon

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/netledger/netledger/internal/geo"
	"github.com/netledger/netledger/internal/hugepage"
	"github.com/netledger/netledger/internal/pipeline"
	"github.com/netledger/netledger/internal/routing/bgp"
	"github.com/netledger/netledger/internal/routing/routers"
	"github.com/netledger/netledger/internal/source/conntrack"
	"github.com/netledger/netledger/internal/source/tcpinfo"
	"github.com/netledger/netledger/internal/source/udpreport"
	"github.com/netledger/netledger/internal/spool"
	"github.com/netledger/netledger/internal/store/sqlite"
)

// Config is the whole configuration of `netledger serve`: one field per component, each with
// the component's own defaults. Unknown keys are errors.
type Config struct {
	// DataDir holds the spool, the embedded store and other state.
	DataDir string `yaml:"data_dir"`
	// HTTP serves /metrics, /healthz and the API.
	HTTP HTTPConfig `yaml:"http"`
	// Spool is the durable log between sources and consumers; its dir defaults to
	// <data_dir>/spool.
	Spool spool.Config `yaml:"spool"`
	// Report is the UDP report collector (protocol v2 and trafstat v1).
	Report udpreport.Config `yaml:"report"`
	// Geo is the country, continent and AS data of the enrichment.
	Geo geo.Config `yaml:"geo"`
	// TCPInfo is the kernel TCP source (sock_diag), off unless enabled.
	TCPInfo tcpinfo.Config `yaml:"tcpinfo"`
	// Conntrack is the conntrack accounting source, off unless enabled.
	Conntrack conntrack.Config `yaml:"conntrack"`
	// Store is the embedded SQLite store; its path defaults to <data_dir>/netledger.db.
	Store sqlite.Config `yaml:"store"`
	// Routers are the routers whose tables the enrichment uses: name, own AS, served server
	// networks, and how the table is fed (MRT files at start, a BGP session).
	Routers []routers.RouterConfig `yaml:"routers"`
	// BGP is the embedded speaker shared by the routers' sessions (listen address, router ID,
	// local AS, timers); it runs only when a router has a session.
	BGP bgp.Config `yaml:"bgp"`
	// Accounting is the pipeline from the spool to the store: intervals, commits, views.
	Accounting pipeline.Config `yaml:"accounting"`
	// Hugepages puts the heap on 2 MiB pages after a routing table is loaded from MRT files
	// (on by default) and, with bgp: true, after a BGP session's bulk changes (see package
	// hugepage).
	Hugepages hugepage.Config `yaml:"hugepages"`
}

// HTTPConfig configures the HTTP endpoint.
type HTTPConfig struct {
	// Listen is the address of /metrics, /healthz and the API; loopback unless configured.
	Listen string `yaml:"listen"`
}

// DefaultConfig returns the effective configuration when the file says nothing.
func DefaultConfig() Config {
	c := Config{
		DataDir: "netledger-data",
		HTTP:    HTTPConfig{Listen: "127.0.0.1:8790"},
		Spool:   spool.DefaultConfig(),
		Report:  udpreport.DefaultConfig(),
		Geo:     geo.DefaultConfig(),
		TCPInfo: tcpinfo.DefaultConfig(),
		Store:   sqlite.DefaultConfig(),
		BGP:     bgp.DefaultConfig(),

		Accounting: pipeline.DefaultConfig(),
		Hugepages:  hugepage.DefaultConfig(),
	}
	c.Conntrack = conntrack.DefaultConfig()
	return c
}

// LoadConfig reads a YAML configuration over the defaults. An empty path gives the defaults.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("cannot read configuration: %w", err)
	}
	if err := DecodeConfig(bytes.NewReader(data), &cfg); err != nil {
		return cfg, fmt.Errorf("cannot parse configuration %s: %w", path, err)
	}
	return cfg, nil
}

// DecodeConfig decodes YAML into cfg, keeping cfg's values for keys the YAML omits and
// rejecting unknown keys.
func DecodeConfig(r io.Reader, cfg *Config) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && err != io.EOF {
		return err
	}
	return nil
}

// Dump returns the configuration as YAML.
func (c Config) Dump() ([]byte, error) {
	return yaml.Marshal(c)
}

// StoreConfig returns the embedded store's configuration with its path resolved.
func (c Config) StoreConfig() sqlite.Config { return c.Store.WithDataDir(c.DataDir) }
