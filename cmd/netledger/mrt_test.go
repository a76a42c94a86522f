package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/testenv"
)

// TestMrtDumpCommand runs `netledger mrt dump` on two files at once and compares with
// bgpdump's expected output for each, concatenated.
func TestMrtDumpCommand(t *testing.T) {
	dir := testenv.Testdata(t, "mrt/ripe-bgpdump")
	names := []string{"updates.nlri_mask_trailing_bits.gz", "bview.ipv6_unicast_add_path.gz"}
	var want bytes.Buffer
	var args []string
	for _, n := range names {
		args = append(args, filepath.Join(dir, "test_data", n))
		f, err := os.Open(filepath.Join(dir, "test_expect", n+".bgp.gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(&want, zr)
		f.Close()
	}
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs(append([]string{"mrt", "dump"}, args...))
	defer rootCmd.SetArgs(nil)
	if err := rootCmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Fatalf("output differs:\n-got\n%s\n+want\n%s", out.String(), want.String())
	}

	// A missing file is an error naming it.
	rootCmd.SetArgs([]string{"mrt", "dump", filepath.Join(t.TempDir(), "absent.gz")})
	if err := rootCmd.Execute(); err == nil || !strings.Contains(err.Error(), "absent.gz") {
		t.Fatalf("error %v, want one naming absent.gz", err)
	}
}
