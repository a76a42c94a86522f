package pipeline

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigYAML(t *testing.T) {
	for _, tc := range []struct {
		yaml  string
		views int
		err   string
	}{
		{"interval: 5m\ncommit_interval: 2s\n", 6, ""},
		{"views: [{name: peer_origin, dimensions: [router, peer_as, origin_as]}]\n", 7, ""},
		{"views: [{name: prefix, dimensions: [prefix]}]\n", 6, ""}, // replaces the default
		{"no_default_views: true\nviews: [{name: x, dimensions: [as_on_path, country], sources: ['!conntrack']}]\n", 1, ""},
		{"no_default_views: true\n", 0, "no views"},
		{"views: [{name: x, dimensions: [asn]}]\n", 0, "unknown dimension"},
		{"views: [{name: x, dimensions: [router], sources: [carrier-pigeon]}]\n", 0, "unknown source"},
		{"interval: 7m\n", 0, "dividing a day"},
		{"interval: 1500ms\n", 0, "whole number of seconds"},
		{"commit_interval: 0s\n", 0, "commit_interval"},
		{"workers: 3\n", 6, ""},
		{"workers: -1\n", 0, "workers"},
	} {
		cfg := DefaultConfig()
		dec := yaml.NewDecoder(strings.NewReader(tc.yaml))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		err := cfg.Validate()
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: Validate() = %v, want %q", tc.yaml, err, tc.err)
			continue
		}
		if err == nil && len(cfg.EffectiveViews()) != tc.views {
			t.Errorf("%q: %d views, want %d", tc.yaml, len(cfg.EffectiveViews()), tc.views)
		}
	}
	if d := DefaultConfig(); d.Interval != time.Minute || d.CommitInterval != time.Second {
		t.Errorf("defaults %+v", d)
	}
	if got, want := DefaultConfig().workers(), min(runtime.GOMAXPROCS(0), 4); got != want {
		t.Errorf("default workers %d, want one per core up to 4 (%d)", got, want)
	}
	if got := (Config{Workers: 3}).workers(); got != 3 {
		t.Errorf("workers: 3 starts %d", got)
	}
}
