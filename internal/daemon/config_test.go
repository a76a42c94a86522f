package daemon

import (
	"strings"
	"testing"
)

func TestDecodeConfigRejectsUnknownKeys(t *testing.T) {
	cfg := DefaultConfig()
	err := DecodeConfig(strings.NewReader("data_dir: /x\nnot_a_key: 1\n"), &cfg)
	if err == nil || !strings.Contains(err.Error(), "not_a_key") {
		t.Fatalf("DecodeConfig() error = %v, want an error naming not_a_key", err)
	}
}

func TestDecodeConfigKeepsDefaults(t *testing.T) {
	cfg := DefaultConfig()
	if err := DecodeConfig(strings.NewReader("data_dir: /var/lib/netledger\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/var/lib/netledger" {
		t.Errorf("DataDir = %q", cfg.DataDir)
	}
	if got, want := cfg.HTTP.Listen, DefaultConfig().HTTP.Listen; got != want {
		t.Errorf("HTTP.Listen = %q, want default %q", got, want)
	}
}
