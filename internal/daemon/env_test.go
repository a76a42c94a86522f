package daemon

import (
	"slices"
	"testing"
	"time"
)

func TestApplyEnv(t *testing.T) {
	cfg := DefaultConfig()
	unknown, err := ApplyEnv(&cfg, []string{
		"NETLEDGER_DATA_DIR=/var/lib/nl",
		"NETLEDGER_REPORT_LISTEN=[::]:8789",
		"NETLEDGER_REPORT_WORKERS=4",
		"NETLEDGER_REPORT_V1_ENABLED=true",
		"NETLEDGER_REPORT_V1_SECRET=s3cret",
		"NETLEDGER_SPOOL_SYNC_INTERVAL=250ms",
		"NETLEDGER_SPOOL_SEGMENT_SIZE=1048576",
		"NETLEDGER_TESTDATA=/elsewhere",
		"PATH=/bin",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unknown, []string{"NETLEDGER_TESTDATA"}) {
		t.Errorf("unknown = %v", unknown)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"data_dir", cfg.DataDir, "/var/lib/nl"},
		{"report.listen", cfg.Report.Listen, "[::]:8789"},
		{"report.workers", cfg.Report.Workers, 4},
		{"report.v1.enabled", cfg.Report.V1.Enabled, true},
		{"report.v1.secret", cfg.Report.V1.Secret, "s3cret"},
		{"spool.sync_interval", cfg.Spool.SyncInterval, 250 * time.Millisecond},
		{"spool.segment_size", cfg.Spool.SegmentSize, int64(1 << 20)},
		{"http.listen", cfg.HTTP.Listen, DefaultConfig().HTTP.Listen},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for _, bad := range []string{"NETLEDGER_REPORT_WORKERS=many", "NETLEDGER_SPOOL_RETENTION=7d", "NETLEDGER_REPORT_V1_ENABLED=maybe"} {
		cfg := DefaultConfig()
		if _, err := ApplyEnv(&cfg, []string{bad}); err == nil {
			t.Errorf("ApplyEnv(%s) succeeded", bad)
		}
	}
	if names := EnvNames(); !slices.Contains(names, "NETLEDGER_REPORT_V1_SECRET") || !slices.Contains(names, "NETLEDGER_HTTP_LISTEN") {
		t.Errorf("EnvNames() = %v", names)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }},
		{"bad report listen", func(c *Config) { c.Report.Listen = "nowhere" }},
		{"bad sync interval", func(c *Config) { c.Spool.SyncInterval = 0 }},
		{"no http", func(c *Config) { c.HTTP.Listen = "" }},
	} {
		cfg := DefaultConfig()
		tc.mod(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate() succeeded", tc.name)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("Validate(defaults) = %v", err)
	}
}
