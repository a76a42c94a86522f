package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netledger/netledger/internal/geo"
)

// marker is the file that says a directory was made by `netledger demo` (and may be reset by
// it).
const marker = ".netledger-demo"

// Files are the paths Setup wrote.
type Files struct {
	Dir    string
	Config string
	// MRT are the routers' RIB dumps, in World.Routers order.
	MRT      []string
	RIR      string
	ASNames  string
	Key      string // the v2 report key (hex), also in Config
	KeyFile  string
	KeyID    uint32
	Networks int
}

// Prepare makes dir ready for a fresh demo: it creates it when missing, resets it when an
// earlier demo made it, and refuses any other non-empty directory.
func Prepare(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("cannot read %s: %w", dir, err)
	case len(entries) == 0:
	default:
		if _, err := os.Stat(filepath.Join(dir, marker)); err != nil {
			return fmt.Errorf("%s exists and was not made by netledger demo: remove it or choose another --data-dir", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("cannot reset the earlier demo in %s: %w", dir, err)
		}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, marker), []byte("made by netledger demo; it may delete this directory when run again\n"), 0o640)
}

// Setup writes w's files into dir (which Prepare made): rib/<router>.mrt, geo/ (RIR
// delegated-extended file and AS names), report.key and netledger.yaml, a configuration that
// `netledger serve --config` runs as is.
func Setup(dir string, w *World, at time.Time) (*Files, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	f := &Files{Dir: abs, Config: filepath.Join(abs, "netledger.yaml"), RIR: filepath.Join(abs, "geo", "delegated-demo-extended.txt"),
		ASNames: filepath.Join(abs, "geo", "as-names.txt"), KeyFile: filepath.Join(abs, "report.key"), KeyID: 1, Networks: len(w.Networks)}
	for _, d := range []string{"rib", "geo"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o750); err != nil {
			return nil, err
		}
	}
	write := func(path string, fn func(*bytes.Buffer) error) error {
		var b bytes.Buffer
		if err := fn(&b); err != nil {
			return fmt.Errorf("cannot generate %s: %w", path, err)
		}
		return os.WriteFile(path, b.Bytes(), 0o640)
	}
	for _, r := range w.Routers {
		p := filepath.Join(abs, "rib", r.Name+".mrt")
		if err := write(p, func(b *bytes.Buffer) error { return WriteMRT(b, r, at) }); err != nil {
			return nil, err
		}
		f.MRT = append(f.MRT, p)
	}
	if err := write(f.RIR, func(b *bytes.Buffer) error { return geo.WriteDemoRIR(b, w.Networks, at) }); err != nil {
		return nil, err
	}
	if err := write(f.ASNames, func(b *bytes.Buffer) error { return geo.WriteDemoASNames(b, w.Names()) }); err != nil {
		return nil, err
	}
	key := make([]byte, 16)
	rand.Read(key)
	f.Key = hex.EncodeToString(key)
	if err := os.WriteFile(f.KeyFile, []byte(f.Key+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.Config, []byte(Config(f, w)), 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

// Config returns the demo's configuration file.
func Config(f *Files, w *World) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# netledger configuration written by "netledger demo": the demo's routers, geo data and key.
# Run it for real with: netledger serve --config %s
data_dir: %q

http:
  listen: 127.0.0.1:8790

report:
  listen: 127.0.0.1:8789   # use "[::]:8789" to take reports from other hosts
  keys:
    - id: %d
      secret: %q
  classes:
`, f.Config, f.Dir, f.KeyID, f.Key)
	for _, c := range Classes {
		fmt.Fprintf(&b, "    %d: %s\n", c.ID, c.Name)
	}
	fmt.Fprintf(&b, `
geo:
  rir_files: [%q]
  as_names: [%q]

# Each router: the server networks it carries (a report's server address selects the router)
# and its table, here from MRT RIB dumps; add "bgp: {neighbor: ADDRESS, peer_asn: ASN}" to
# keep it current over a BGP session instead.
routers:
`, f.RIR, f.ASNames)
	for i, r := range w.Routers {
		nets := make([]string, len(r.Networks))
		for j, n := range r.Networks {
			nets[j] = n.String()
		}
		fmt.Fprintf(&b, "  - name: %s\n    asn: %d\n    networks: [%s]\n    mrt: [%q]\n", r.Name, r.ASN, strings.Join(nets, ", "), f.MRT[i])
	}
	return b.String()
}
