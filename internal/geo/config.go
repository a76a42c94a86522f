package geo

import (
	"errors"
	"fmt"
	"time"
)

// Config says where the country, continent and AS data come from. Every list is in precedence
// order. Nothing configured is valid: every lookup then returns the zero Info.
//
// Precedence of the address → country/continent data: the country databases first (the first
// listed wins where they overlap), then the RIR files fill only the address space no database
// covers (again the first listed wins). Address → AS number comes from the ASN databases only
// (RIR files do not map addresses to AS numbers). AS names come from the AS names files first,
// then from the organisation names of the ASN databases.
type Config struct {
	// CountryDatabases are mmdb files with countries: MaxMind GeoLite2/GeoIP2 Country or City,
	// DB-IP lite Country or City, IPinfo lite.
	CountryDatabases []string `yaml:"country_databases"`
	// ASNDatabases are mmdb files with AS numbers: MaxMind GeoLite2-ASN or GeoIP2-ISP, IPinfo
	// lite (which can be listed here and in CountryDatabases), DB-IP ASN lite.
	ASNDatabases []string `yaml:"asn_databases"`
	// RIRFiles are RIR delegated or delegated-extended statistics files (the five RIRs' or the
	// NRO's combined file, IPv4 and IPv6; .gz is read transparently).
	RIRFiles []string `yaml:"rir_files"`
	// ASNames are plain `asn<TAB>name` files.
	ASNames []string `yaml:"as_names"`
	// CheckInterval is how often the Reloader checks the files for changes and reloads them;
	// 0 disables the checks (SIGHUP still reloads).
	CheckInterval time.Duration `yaml:"check_interval"`
}

// DefaultConfig returns the defaults: no data files, files checked every 30 seconds.
func DefaultConfig() Config {
	return Config{CheckInterval: 30 * time.Second}
}

// files returns every configured file.
func (c Config) files() []string {
	var out []string
	for _, l := range [][]string{c.CountryDatabases, c.ASNDatabases, c.RIRFiles, c.ASNames} {
		out = append(out, l...)
	}
	return out
}

// Validate checks the configuration without opening the files.
func (c Config) Validate() error {
	if c.CheckInterval < 0 {
		return fmt.Errorf("geo.check_interval is negative (%s)", c.CheckInterval)
	}
	for _, p := range c.files() {
		if p == "" {
			return errors.New("geo: empty file name")
		}
	}
	return nil
}
