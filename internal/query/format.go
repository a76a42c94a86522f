// Package query prints the answers of `netledger top` and `netledger series`: tables with
// human units (kB/MB/GB, bit/s over the range, %, ms), JSON and CSV with raw numbers. It also
// parses the time flags those commands (and `netledger replay`) share.
package query

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/netledger/netledger/internal/record"
	"github.com/netledger/netledger/internal/store"
)

// Formats are the output formats.
var Formats = []string{"table", "json", "csv"}

// Metrics are the metrics top can order by.
var Metrics = []string{"bytes", "requests", "packets", "retransmit-rate", "rtt"}

// Dimensions are the dimensions top and series can group by.
var Dimensions = []string{"asn", "origin", "peer", "path-asn", "country", "region", "prefix", "router", "class", "proto", "port", "src-group", "dst-group"}

// Names returns the name of an AS ("" when unknown); geo.DB.ASName fits.
type Names func(asn uint32) string

// Output is what the printers need besides the results.
type Output struct {
	// Query is the query answered (By, Metric, From, To, Step).
	Query store.Query
	// Names names ASes in the AS dimensions; nil prints numbers only.
	Names Names
	// Format is table, json or csv.
	Format string
}

// CheckFormat rejects an unknown output format.
func CheckFormat(f string) error {
	for _, g := range Formats {
		if f == g {
			return nil
		}
	}
	return fmt.Errorf("unknown format %q (want %s)", f, strings.Join(Formats, ", "))
}

// CheckQuery rejects an unknown dimension or metric, and an empty range.
func CheckQuery(q store.Query) error {
	if !contains(Dimensions, q.By) {
		return fmt.Errorf("unknown dimension %q for --by (want %s)", q.By, strings.Join(Dimensions, ", "))
	}
	if q.Metric != "" && !contains(Metrics, q.Metric) {
		return fmt.Errorf("unknown metric %q (want %s)", q.Metric, strings.Join(Metrics, ", "))
	}
	if !q.From.Before(q.To) {
		return fmt.Errorf("empty time range: from %s is not before to %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	return nil
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// isAS reports whether a dimension's keys are AS numbers.
func isAS(by string) bool {
	switch by {
	case "asn", "origin", "peer", "path-asn":
		return true
	}
	return false
}

// name returns the AS name of a key such as "AS64500" ("" when not an AS or unknown).
func (o Output) name(key string) string {
	if o.Names == nil || !isAS(o.Query.By) {
		return ""
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(key, "AS"), 10, 32)
	if err != nil {
		return ""
	}
	if n == 0 {
		return "(no route)"
	}
	return o.Names(uint32(n))
}

// row is one printed line with its derived values.
type row struct {
	Start          *time.Time `json:"start,omitempty"`
	Key            string     `json:"key"`
	Name           string     `json:"name,omitempty"`
	Requests       uint64     `json:"requests"`
	Bytes          uint64     `json:"bytes"`
	BitsPerSecond  float64    `json:"bits_per_second"`
	Share          float64    `json:"share"` // of the bytes of the listed groups (of the bucket for series)
	Packets        uint64     `json:"packets"`
	Retransmits    uint64     `json:"retransmits"`
	RetransmitRate float64    `json:"retransmit_rate"` // retransmits ÷ packets
	RTTms          float64    `json:"rtt_ms"`          // mean RTT of the requests that had one
}

// RetransmitRate returns retransmits ÷ packets (0 without packets).
func RetransmitRate(m *record.Metrics) float64 {
	if m.Packets == 0 {
		return 0
	}
	return float64(m.Retransmits) / float64(m.Packets)
}

// RTT returns the mean RTT in milliseconds (0 without samples).
func RTT(m *record.Metrics) float64 {
	if m.RTTCount == 0 {
		return 0
	}
	return float64(m.RTTSum) / float64(m.RTTCount) / 1000
}

func (o Output) rows(res []store.Result, series bool) []row {
	totals := map[time.Time]uint64{}
	for i := range res {
		totals[res[i].Start] += res[i].Metrics.Bytes
	}
	span := o.Query.To.Sub(o.Query.From)
	if series && o.Query.Step == 0 {
		o.Query.Step = inferStep(res)
	}
	out := make([]row, len(res))
	for i := range res {
		r := &res[i]
		m := &r.Metrics
		d := span
		if series {
			d = o.step(r)
		}
		w := row{
			Key: r.Key, Name: o.name(r.Key), Requests: m.Requests, Bytes: m.Bytes, Packets: m.Packets,
			Retransmits: m.Retransmits, RetransmitRate: RetransmitRate(m), RTTms: RTT(m),
		}
		if d > 0 {
			w.BitsPerSecond = float64(m.Bytes) * 8 / d.Seconds()
		}
		if t := totals[r.Start]; t > 0 {
			w.Share = float64(m.Bytes) / float64(t)
		}
		if series {
			s := r.Start.UTC()
			w.Start = &s
		}
		out[i] = w
	}
	return out
}

// inferStep returns the smallest gap between the starts of a series' points (0 for fewer
// than two distinct starts): the step the store chose when the query left it to it.
func inferStep(res []store.Result) time.Duration {
	var step time.Duration
	for i := 1; i < len(res); i++ {
		if d := res[i].Start.Sub(res[i-1].Start); d > 0 && (step == 0 || d < step) {
			step = d
		}
	}
	return step
}

// step is the length of a series bucket: the query's step, else the resolution answered.
func (o Output) step(r *store.Result) time.Duration {
	if o.Query.Step > 0 {
		return o.Query.Step
	}
	return r.Resolution
}

// Top prints the groups of a top query.
func Top(w io.Writer, o Output, res []store.Result) error {
	return o.write(w, o.rows(res, false), false)
}

// Series prints the points of a series query.
func Series(w io.Writer, o Output, res []store.Result) error {
	return o.write(w, o.rows(res, true), true)
}

func (o Output) write(w io.Writer, rows []row, series bool) error {
	switch o.Format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []row{}
		}
		return enc.Encode(rows)
	case "csv":
		cw := csv.NewWriter(w)
		head := []string{"key", "name", "requests", "bytes", "bits_per_second", "share", "packets", "retransmits", "retransmit_rate", "rtt_ms"}
		if series {
			head = append([]string{"start"}, head...)
		}
		cw.Write(head)
		for _, r := range rows {
			rec := []string{r.Key, r.Name, u(r.Requests), u(r.Bytes), f(r.BitsPerSecond), f(r.Share), u(r.Packets),
				u(r.Retransmits), f(r.RetransmitRate), f(r.RTTms)}
			if series {
				rec = append([]string{r.Start.Format(time.RFC3339)}, rec...)
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	case "table", "":
		by := strings.ToUpper(o.Query.By)
		cells := [][]string{{"#", by, "REQUESTS", "BYTES", "RATE", "SHARE", "PACKETS", "RETRANS", "RTT"}}
		if series {
			cells[0][0] = "START"
		}
		for i, r := range rows {
			first := strconv.Itoa(i + 1)
			if series {
				first = r.Start.Format("2006-01-02 15:04")
			}
			key := r.Key
			if r.Name != "" {
				key += " " + Truncate(r.Name, 28)
			}
			cells = append(cells, []string{first, key, Count(r.Requests), Bytes(r.Bytes), Bits(r.BitsPerSecond),
				Percent(r.Share), Count(r.Packets), Percent(r.RetransmitRate), Millis(r.RTTms)})
		}
		if err := Table(w, cells, 1); err != nil {
			return err
		}
		if len(rows) == 0 {
			_, err := fmt.Fprintln(w, "(no traffic in this range)")
			return err
		}
		return nil
	}
	return CheckFormat(o.Format)
}

func u(v uint64) string  { return strconv.FormatUint(v, 10) }
func f(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// Truncate shortens s to n runes, ending it with "…" when cut.
func Truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// scaled formats v with the largest SI prefix that keeps it ≥ 1 (three significant digits).
func scaled(v float64, unit string, prefixes []string) string {
	i := 0
	for v >= 999.5 && i < len(prefixes)-1 {
		v /= 1000
		i++
	}
	switch {
	case i == 0:
		return strconv.FormatFloat(v, 'f', 0, 64) + " " + prefixes[0] + unit
	case v >= 99.95:
		return strconv.FormatFloat(v, 'f', 0, 64) + " " + prefixes[i] + unit
	case v >= 9.995:
		return strconv.FormatFloat(v, 'f', 1, 64) + " " + prefixes[i] + unit
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + " " + prefixes[i] + unit
}

// Bytes formats a byte count in decimal units: 980 B, 1.50 kB, 12.3 MB, 4.57 GB, 1.20 TB.
func Bytes(v uint64) string { return scaled(float64(v), "B", []string{"", "k", "M", "G", "T", "P"}) }

// Bits formats a rate in bit/s: 800 bit/s, 12.5 kbit/s, 3.20 Gbit/s.
func Bits(v float64) string {
	return scaled(v, "bit/s", []string{"", "k", "M", "G", "T"})
}

// Count formats a count: 999, 1.20k, 35.0M.
func Count(v uint64) string {
	if v < 1000 {
		return strconv.FormatUint(v, 10)
	}
	return strings.ReplaceAll(scaled(float64(v), "", []string{"", "k", "M", "G", "T"}), " ", "")
}

// Percent formats a ratio as a percentage: 0.0123 → 1.23 %.
func Percent(v float64) string {
	switch p := v * 100; {
	case p == 0:
		return "0 %"
	case p >= 9.995:
		return strconv.FormatFloat(p, 'f', 1, 64) + " %"
	default:
		return strconv.FormatFloat(p, 'f', 2, 64) + " %"
	}
}

// Millis formats milliseconds ("-" for none).
func Millis(v float64) string {
	if v == 0 {
		return "-"
	}
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " ms"
}

// Table writes cells as aligned columns, two spaces apart: the first column and column left
// aligned left, the others right.
func Table(w io.Writer, cells [][]string, left int) error {
	var width []int
	for _, row := range cells {
		for i, c := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, row := range cells {
		b.Reset()
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i > 0 {
				b.WriteString("  ")
			}
			if i == left || i == 0 {
				b.WriteString(c)
				if i < len(row)-1 {
					b.WriteString(pad)
				}
			} else {
				b.WriteString(pad + c)
			}
		}
		b.WriteByte('\n')
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}
