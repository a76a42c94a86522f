package ctcsv

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/netledger/netledger/internal/testenv"
)

// TestTelegrafConfig checks deploy/telegraf-conntrack.conf against the lines the writer
// produces: one column name and type per field, in order, with the tags among them.
func TestTelegrafConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.Root(), "deploy", "telegraf-conntrack.conf"))
	if err != nil {
		t.Fatal(err)
	}
	list := func(key string) []string {
		m := regexp.MustCompile(`(?m)^\s*` + key + `\s*=\s*\[(.*)\]`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no %s", key)
		}
		var out []string
		for _, s := range strings.Split(string(m[1]), ",") {
			out = append(out, strings.Trim(strings.TrimSpace(s), `"`))
		}
		return out
	}
	names, types := list("csv_column_names"), list("csv_column_types")
	want := "time proto src dst port src_packets dst_packets src_bytes dst_bytes connection_count connection_time_ms open_connections"
	if strings.Join(names, " ") != want {
		t.Errorf("csv_column_names = %v, want %s", names, want)
	}
	r := Row{Time: 1, Proto: 6, Src: netip.MustParseAddr("10.0.0.0"), Dst: netip.MustParseAddr("10.0.1.0"), Port: 443, Open: 1}
	fields := strings.Split(strings.TrimSpace(string(r.Append(nil, true))), ",")
	if len(fields) != len(names) || len(types) != len(names) {
		t.Errorf("%d fields written with --track-open, %d column names, %d types", len(fields), len(names), len(types))
	}
	for _, tag := range list("csv_tag_columns") {
		i := strings.Index(" "+want+" ", " "+tag+" ")
		if i < 0 {
			t.Errorf("tag column %q is not a column", tag)
		}
	}
	if !regexp.MustCompile(`(?m)^\s*pipe\s*=\s*true`).Match(b) {
		t.Error("the tail input must read a FIFO (pipe = true)")
	}
}
