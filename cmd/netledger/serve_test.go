package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netledger/netledger/internal/daemon"
)

func TestServeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "netledger.yaml")
	os.WriteFile(file, []byte("data_dir: /from/file\nhttp: {listen: \"127.0.0.1:1111\"}\nreport: {listen: \"127.0.0.1:2222\", workers: 3}\n"), 0o600)
	t.Setenv("NETLEDGER_REPORT_LISTEN", "127.0.0.1:3333")
	t.Setenv("NETLEDGER_HTTP_LISTEN", "127.0.0.1:4444")
	cfg, err := loadServeConfig(serveFlags{config: file, httpListen: "127.0.0.1:5555"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"data_dir (file)", cfg.DataDir, "/from/file"},
		{"report.listen (env over file)", cfg.Report.Listen, "127.0.0.1:3333"},
		{"http.listen (flag over env)", cfg.HTTP.Listen, "127.0.0.1:5555"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.Report.Workers != 3 {
		t.Errorf("report.workers = %d, want 3 from the file", cfg.Report.Workers)
	}
}

// runCLI runs the netledger command line with args and returns its output. Flags keep their
// values between runs of a command, so they are reset to their defaults afterwards.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs(args)
	defer rootCmd.SetArgs(nil)
	err := rootCmd.Execute()
	resetCLI()
	return out.String(), err
}

// resetCLI undoes what a run leaves in the (global) command tree: flag values, which keep
// theirs between runs (slices even append), and contexts — cobra gives a command the root's
// context only when it has none, so a run after ExecuteContext got the earlier, by then
// cancelled, context and stopped at once.
func resetCLI() {
	var reset func(c *cobra.Command)
	reset = func(c *cobra.Command) {
		c.SetContext(nil)
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				var def []string
				if d := strings.Trim(f.DefValue, "[]"); d != "" {
					def = strings.Split(d, ",")
				}
				sv.Replace(def)
			} else {
				f.Value.Set(f.DefValue)
			}
			f.Changed = false
		})
		for _, sub := range c.Commands() {
			reset(sub)
		}
	}
	reset(rootCmd)
}

func TestServeCheckAndDump(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("report: {keys: [{id: 1, secret: short}]}\n"), 0o600)
	if _, err := runCLI(t, "serve", "--config", bad, "--check"); err == nil || !strings.Contains(err.Error(), "shorter than 16") {
		t.Errorf("serve --check on a short key: %v", err)
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("reprot: {}\n"), 0o600)
	if _, err := runCLI(t, "serve", "--config", unknown, "--check"); err == nil || !strings.Contains(err.Error(), "reprot") {
		t.Errorf("serve --check on an unknown key: %v", err)
	}
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("report: {keys: [{id: 9, secret: 0123456789abcdef-very-secret}]}\n"), 0o600)
	if out, err := runCLI(t, "serve", "--config", good, "--check"); err != nil || out != "configuration ok\n" {
		t.Errorf("serve --check = %q, %v", out, err)
	}
	out, err := runCLI(t, "serve", "--config", good, "--dump-config")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "very-secret") || !strings.Contains(out, "id: 9") {
		t.Errorf("--dump-config shows the secret or lacks the key:\n%s", out)
	}
	// The dump is a configuration file giving the same configuration (secrets aside).
	cfg := daemon.DefaultConfig()
	if err := daemon.DecodeConfig(strings.NewReader(out), &cfg); err != nil {
		t.Fatalf("dump does not parse: %v", err)
	}
	want, _ := loadServeConfig(serveFlags{config: good})
	again, _ := cfg.Redacted().Dump()
	if wantDump, _ := want.Redacted().Dump(); string(again) != string(wantDump) {
		t.Errorf("dump does not round-trip:\n%s\nvs\n%s", again, wantDump)
	}
}
