package tcpinfo

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigYAML(t *testing.T) {
	in := `
enabled: true
interval: 5s
receive_buffer: 67108864
ports: [80, 443]
addresses: [192.0.2.0/24, "2001:db8::/32"]
netns: web
cgroup: /sys/fs/cgroup/system.slice/nginx.service
partitions: 4
dump_method: netlink
classes:
  - {port: 443, class: 2}
  - {prefix: 192.0.2.128/25, class: 3}
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(in))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{Enabled: true, Interval: 5 * time.Second, ReceiveBuffer: 64 << 20, Ports: []uint16{80, 443},
		Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")},
		NetNS:     "web", Cgroup: "/sys/fs/cgroup/system.slice/nginx.service", Partitions: 4,
		DumpMethod: DumpNetlink,
		Classes:    []ClassRule{{Port: 443, Class: 2}, {Prefix: netip.MustParsePrefix("192.0.2.128/25"), Class: 3}}}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("decoded\n got %+v\nwant %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
	// The dump (serve --dump-config) decodes back to the same configuration.
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back Config
	if err := yaml.Unmarshal(out, &back); err != nil {
		t.Fatalf("%v in\n%s", err, out)
	}
	if !reflect.DeepEqual(back, want) {
		t.Errorf("round trip\n got %+v\nwant %+v\n%s", back, want, out)
	}
}

func TestConfigValidatePartitions(t *testing.T) {
	for _, tc := range []struct {
		partitions int
		ok         bool
	}{{-1, false}, {0, true}, {1, true}, {maxPartitions, true}, {maxPartitions + 1, false}} {
		cfg := DefaultConfig()
		cfg.Partitions = tc.partitions
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("partitions %d: Validate() = %v", tc.partitions, err)
		}
	}
}
