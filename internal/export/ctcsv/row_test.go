package ctcsv

import (
	"bufio"
	"bytes"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netledger/netledger/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files")

var goldenRows = []Row{
	{Time: 1605374115000000000, Proto: 6, Src: netip.MustParseAddr("10.32.251.0"), Dst: netip.MustParseAddr("10.32.250.0"), Port: 443,
		SrcPackets: 16, DstPackets: 13, SrcBytes: 3220, DstBytes: 1884, Connections: 1, ConnTimeMs: 65021, Open: 3},
	{Time: 1605374115000000000, Proto: 17, Src: netip.MustParseAddr("10.32.5.0"), Dst: netip.MustParseAddr("10.32.7.0"), Port: -1,
		SrcPackets: 3, SrcBytes: 384},
	{Time: 1605374115000000000, Proto: 58, Src: netip.MustParseAddr("fd00::a:0"), Dst: netip.MustParseAddr("fd00::b:0"), Port: 0,
		SrcPackets: 1, SrcBytes: 104, DstPackets: 1, DstBytes: 104},
	{Time: 1605374115000000000, Proto: 6, Src: netip.MustParseAddr("10.32.5.0"), Dst: netip.MustParseAddr("10.32.7.0"), Port: 9000, Open: 2},
	{Time: 1605374115000000000, Proto: 250, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"), Port: 0, SrcPackets: 1, SrcBytes: 20},
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	for _, open := range []bool{true, false} {
		var b []byte
		for i := range goldenRows {
			b = goldenRows[i].Append(b, open)
		}
		name := "rows.csv"
		if !open {
			name = "rows-no-open.csv"
		}
		golden(t, name, b)
		// and back: every line parses to the row it came from
		sc := bufio.NewScanner(bytes.NewReader(b))
		for i := 0; sc.Scan(); i++ {
			got, err := Parse(sc.Bytes())
			if err != nil {
				t.Fatalf("line %d: %v", i+1, err)
			}
			want := goldenRows[i]
			if !open {
				want.Open = 0
			}
			if got != want {
				t.Errorf("line %d: parsed %+v, want %+v", i+1, got, want)
			}
		}
	}
}

func TestParseOriginalLine(t *testing.T) {
	// the line from the original's Telegraf configuration
	r, err := Parse([]byte("1605374115000000000,tcp,10.32.251.1,10.32.250.2,443,16,13,3220,1884,1,65021,3"))
	if err != nil {
		t.Fatal(err)
	}
	want := Row{Time: 1605374115000000000, Proto: 6, Src: netip.MustParseAddr("10.32.251.1"), Dst: netip.MustParseAddr("10.32.250.2"),
		Port: 443, SrcPackets: 16, DstPackets: 13, SrcBytes: 3220, DstBytes: 1884, Connections: 1, ConnTimeMs: 65021, Open: 3}
	if r != want {
		t.Errorf("Parse = %+v, want %+v", r, want)
	}
}

func TestParseRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"1,tcp,10.0.0.1,10.0.0.2,80,1,1,1,1,1", // 10 fields
		"1,tcp,10.0.0.1,10.0.0.2,80,1,1,1,1,1,1,1,1",                // 13 fields
		"x,tcp,10.0.0.1,10.0.0.2,80,1,1,1,1,1,1",                    // time
		"1,nosuch,10.0.0.1,10.0.0.2,80,1,1,1,1,1,1",                 // proto
		"1,tcp,10.0.0.999,10.0.0.2,80,1,1,1,1,1,1",                  // src
		"1,tcp,10.0.0.1,,80,1,1,1,1,1,1",                            // dst
		"1,tcp,10.0.0.1,10.0.0.2,70000,1,1,1,1,1,1",                 // port
		"1,tcp,10.0.0.1,10.0.0.2,80,-1,1,1,1,1,1",                   // negative counter
		"1,tcp,10.0.0.1,10.0.0.2,80,1,1,1,1,1,1,x",                  // open
		"1,tcp,10.0.0.1,10.0.0.2,80,1,1,1,1,1,1\r",                  // stray CR
		"1,tcp,10.0.0.1,10.0.0.2,80,1,1,1,18446744073709551616,1,1", // overflow
	} {
		if _, err := Parse([]byte(line)); err == nil {
			t.Errorf("Parse(%q): no error", line)
		}
	}
}

func FuzzParse(f *testing.F) {
	for i := range goldenRows {
		f.Add(goldenRows[i].Append(nil, true))
	}
	f.Add([]byte("1605374115000000000,tcp,10.32.251.1,10.32.250.2,443,16,13,3220,1884,1,65021"))
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := Parse(bytes.TrimSuffix(line, []byte("\n")))
		if err != nil {
			return
		}
		back, err := Parse(bytes.TrimSuffix(r.Append(nil, true), []byte("\n")))
		if err != nil || back != r {
			t.Fatalf("round trip: %+v -> %+v, %v", r, back, err)
		}
	})
}

func TestWriterFolder(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(Config{Dir: dir, TrackOpen: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2020, 11, 14, 17, 15, 15, 0, time.UTC)
	if err := w.Write(ts, goldenRows); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ts, goldenRows[:1]); err != nil { // the same second again: a second file
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"traffic_2020-11-14T17_15_15-2.csv", "traffic_2020-11-14T17_15_15.csv"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("files %v, want %v (no temporary file left)", names, want)
	}
	got, _ := os.ReadFile(filepath.Join(dir, want[1]))
	golden(t, "rows.csv", got)
}

// TestPipeCat: the FIFO is created with a large buffer and a plain `cat` reads the lines
// while the writer runs; with no reader, the writer drops lines instead of blocking.
func TestPipeCat(t *testing.T) {
	cat := testenv.Command(t, "cat")
	path := filepath.Join(t.TempDir(), "conntrack_acct")
	w, err := Open(Config{Pipe: path, TrackOpen: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.Command(cat, path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for range 3 {
		if err := w.Write(time.Unix(0, goldenRows[0].Time), goldenRows); err != nil {
			t.Fatal(err)
		}
	}
	var want []byte
	for i := range goldenRows {
		want = goldenRows[i].Append(want, true)
	}
	want = bytes.Repeat(want, 3)
	got := make([]byte, len(want))
	done := make(chan error, 1)
	go func() { _, err := io_ReadFull(out, got); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("cat did not read the lines")
	}
	if !bytes.Equal(got, want) {
		t.Errorf("cat read:\n%s\nwant:\n%s", got, want)
	}
	if w.PipeDropped != 0 {
		t.Errorf("dropped %d lines with a reader attached", w.PipeDropped)
	}
}

func TestPipeWithoutReaderDoesNotBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p")
	w, err := Open(Config{Pipe: path, PipeSize: 64 << 10}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rows := make([]Row, 5000)
	for i := range rows {
		rows[i] = goldenRows[0]
		rows[i].Port = int32(i)
	}
	done := make(chan error, 1)
	go func() { done <- w.Write(time.Now(), rows) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked on a FIFO nobody reads")
	}
	if w.PipeDropped == 0 {
		t.Error("no line counted as dropped although the pipe buffer is smaller than the lines")
	}
}
