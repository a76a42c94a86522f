package geo

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/oschwald/maxminddb-golang/v2"
)

// FuzzMMDB feeds mutated databases to the loader: it must return a table or an error, never
// crash. Seeds are the small test databases when the fixtures are present.
func FuzzMMDB(f *testing.F) {
	dir := filepath.Join(os.Getenv("NETLEDGER_TESTDATA"), "geo/maxmind-db/test-data")
	if os.Getenv("NETLEDGER_TESTDATA") == "" {
		dir = filepath.Join("..", "..", "..", "shared", "testdata", "geo/maxmind-db/test-data")
	}
	for _, name := range []string{
		// Small databases only: the fuzzer minimises large inputs very slowly.
		"MaxMind-DB-test-ipv4-24.mmdb", "MaxMind-DB-test-mixed-24.mmdb", "MaxMind-DB-test-decoder.mmdb",
		"MaxMind-DB-test-broken-pointers-24.mmdb", "MaxMind-DB-test-metadata-pointers.mmdb",
	} {
		if data, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("\xab\xcd\xefMaxMind.com"))
	f.Fuzz(func(t *testing.T, data []byte) {
		db, err := maxminddb.OpenBytes(data)
		if err != nil {
			return
		}
		_, _ = walkMMDB(db, "fuzz.mmdb")
	})
}
