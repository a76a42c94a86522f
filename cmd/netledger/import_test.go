package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/store"
	"github.com/netledger/netledger/internal/store/sqlite"
)

// TestImportCommand runs `netledger import --once` twice on a folder with an original tool's
// file and a malformed one: the good file lands in the store, the bad one in rejected/ (exit
// status 1), and a second copy of the good file is a duplicate that changes nothing.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	watch, move := filepath.Join(dir, "new"), filepath.Join(dir, "done")
	os.MkdirAll(watch, 0o755)
	good := "1605374115000000000,tcp,10.32.251.1,10.32.250.2,443,16,13,3220,1884,1,65021,3\n" +
		"1605374115000000000,udp,10.32.5.0,10.32.7.0,53,3,3,240,480,0,0,0\n"
	os.WriteFile(filepath.Join(watch, "traffic_1.csv"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(watch, "traffic_2.csv"), []byte("1605374130000000000,tcp,10.32.5.0\n"), 0o644)
	run := func() (string, error) {
		var out bytes.Buffer
		rootCmd.SetOut(&out)
		rootCmd.SetArgs([]string{"import", "--watch", watch, "--move", move, "--data-dir", dir, "--settle", "0", "--once"})
		defer rootCmd.SetOut(nil)
		err := rootCmd.Execute()
		return out.String(), err
	}
	out, err := run()
	if err == nil || !strings.Contains(err.Error(), "1 file(s) rejected") {
		t.Errorf("first run: err = %v, want one rejected file", err)
	}
	if !strings.Contains(out, "imported  traffic_1.csv (2 rows)") || !strings.Contains(out, "rejected  traffic_2.csv: line 1") {
		t.Errorf("first run printed:\n%s", out)
	}
	os.WriteFile(filepath.Join(watch, "copy.csv"), []byte(good), 0o644)
	if out, err = run(); err != nil || !strings.Contains(out, "duplicate copy.csv") {
		t.Errorf("second run: %v\n%s", err, out)
	}

	cfg := sqlite.DefaultConfig().WithDataDir(dir)
	db, err := sqlite.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	top, err := db.Top(context.Background(), store.Query{View: "conntrack", By: "proto", Metric: "bytes",
		From: time.Unix(1605374100, 0), To: time.Unix(1605374200, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var bytesIn, bytesOut uint64
	for _, r := range top {
		bytesIn += r.Metrics.BytesIn
		bytesOut += r.Metrics.Bytes
	}
	if len(top) != 2 || bytesIn != 3220+240 || bytesOut != 1884+480 {
		t.Errorf("store holds %+v", top)
	}
	if _, err := os.Stat(filepath.Join(move, "rejected", "traffic_2.csv.error.txt")); err != nil {
		t.Error(err)
	}

	// The conntrack dimensions are queryable from the command line.
	topOut, err := runCLI(t, "top", "--data-dir", dir, "--by", "src-group", "--format", "csv",
		"--from", "2020-11-14T17:00:00Z", "--to", "2020-11-14T18:00:00Z")
	if err != nil {
		t.Fatalf("top --by src-group: %v", err)
	}
	if !strings.Contains(topOut, "\n10.32.251.1,,1,1884,") || !strings.Contains(topOut, "\n10.32.5.0,,0,480,") {
		t.Errorf("top --by src-group printed:\n%s", topOut)
	}
}

// TestImportWatchMetrics runs `netledger import` as a watcher: a file dropped into the folder is
// imported, and /metrics on --listen says so (files by result, rows, store commits).
func TestImportWatchMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	watch, move := filepath.Join(dir, "new"), filepath.Join(dir, "done")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "import", "--watch", watch, "--move", move, "--data-dir", dir,
		"--settle", "0", "--poll", "50ms", "--listen", addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("import exited with %v after SIGTERM, want 0", err)
		}
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(watch); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("import did not create its watch folder in 60 s")
		}
	}
	csv := "1605374115000000000,tcp,10.32.251.1,10.32.250.2,443,16,13,3220,1884,1,65021,3\n" +
		"1605374115000000000,udp,10.32.5.0,10.32.7.0,53,3,3,240,480,0,0,0\n"
	// With --settle 0 the file must arrive whole: written in place, the importer could read
	// it between its creation and its write (0 rows imported, the file moved away; seen under
	// load). Written beside the folder and renamed in, as a producer without a settle time must.
	tmp := filepath.Join(dir, "traffic_1.csv.part")
	if err := os.WriteFile(tmp, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(watch, "traffic_1.csv")); err != nil {
		t.Fatal(err)
	}
	want := []string{`netledger_import_files_total{result="imported"} 1`, "netledger_import_rows_total 2"}
	var body string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, want[0]) && strings.Contains(body, want[1]) {
			if !strings.Contains(body, "netledger_store_") {
				t.Errorf("/metrics has no store metrics:\n%s", body)
			}
			return
		}
	}
	t.Fatalf("/metrics never showed %q; last:\n%s", want, body)
}
