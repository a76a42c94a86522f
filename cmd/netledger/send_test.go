package main

import (
	"net/netip"
	"testing"

	"github.com/netledger/netledger/internal/record"
)

func TestParseCSV(t *testing.T) {
	for _, tc := range []struct {
		line string
		want record.Record
		err  bool
	}{
		{line: "198.51.100.7,1500", want: record.Record{Client: netip.MustParseAddr("198.51.100.7"), BytesOut: 1500, Requests: 1}},
		{line: "2001:db8::1, 77, 1, 2, 1448, 100, 5000, 203.0.113.9", want: record.Record{
			Client: netip.MustParseAddr("2001:db8::1"), BytesOut: 77, Class: 1, Retransmits: 2, MSS: 1448,
			RTT: 100, Duration: 5000, Server: netip.MustParseAddr("203.0.113.9"), Requests: 1}},
		{line: "::ffff:198.51.100.8,1", want: record.Record{Client: netip.MustParseAddr("198.51.100.8"), BytesOut: 1, Requests: 1}},
		{line: "198.51.100.7", err: true},
		{line: "example.com,1", err: true},
		{line: "198.51.100.7,-1", err: true},
		{line: "198.51.100.7,1,70000", err: true},
		{line: "198.51.100.7,1,1,1,1,1,1,nowhere", err: true},
		{line: "198.51.100.7,1,1,1,1,1,1,1,1", err: true},
	} {
		got, err := parseCSV(tc.line)
		if (err != nil) != tc.err {
			t.Errorf("parseCSV(%q) error = %v, want error %v", tc.line, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if got.Time == 0 {
			t.Errorf("parseCSV(%q): time not set", tc.line)
		}
		got.Time = 0
		if got != tc.want {
			t.Errorf("parseCSV(%q):\n-got  %+v\n+want %+v", tc.line, got, tc.want)
		}
	}
}
