package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTime reads a time flag: RFC 3339 ("2026-11-23T10:00:00Z"), a date and time in UTC
// ("2026-11-23 10:00", "2026-11-23T10:00", "2026-11-23"), Unix seconds, or a duration back from
// now ("90m", "24h", "7d", "-2h").
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("empty time")
	}
	if d, err := ParseDuration(strings.TrimPrefix(s, "-")); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("cannot read time %q: want RFC 3339, \"YYYY-MM-DD[ HH:MM[:SS]]\" (UTC), Unix seconds or a duration back from now such as 24h or 7d", s)
}

// ParseDuration reads a Go duration, also with days ("7d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	if i := strings.IndexByte(s, 'd'); i > 0 {
		days, err := strconv.ParseUint(s[:i], 10, 16)
		if err != nil {
			return 0, fmt.Errorf("cannot read duration %q", s)
		}
		d := time.Duration(days) * 24 * time.Hour
		if rest := s[i+1:]; rest != "" {
			r, err := time.ParseDuration(rest)
			if err != nil {
				return 0, fmt.Errorf("cannot read duration %q", s)
			}
			d += r
		}
		return d, nil
	}
	return time.ParseDuration(s)
}

// Range returns the query range of the flags: --from/--to when given (to defaults to now),
// else the last `since`. Both ends are truncated to the minute, the finest resolution kept,
// and to is rounded up so that the current minute is included.
func Range(since, from, to string, now time.Time) (time.Time, time.Time, error) {
	end := now
	if to != "" {
		t, err := ParseTime(to, now)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--to: %w", err)
		}
		end = t
	}
	var start time.Time
	if from != "" {
		t, err := ParseTime(from, now)
		if err != nil {
			return time.Time{}, time.Time{}, fmt.Errorf("--from: %w", err)
		}
		start = t
	} else {
		d, err := ParseDuration(since)
		if err != nil || d <= 0 {
			return time.Time{}, time.Time{}, fmt.Errorf("--since: want a positive duration such as 24h or 7d, got %q", since)
		}
		start = end.Add(-d)
	}
	start = start.UTC().Truncate(time.Minute)
	if t := end.UTC().Truncate(time.Minute); !t.Equal(end.UTC()) {
		end = t.Add(time.Minute)
	}
	if !start.Before(end) {
		return time.Time{}, time.Time{}, fmt.Errorf("empty time range: from %s is not before to %s", start.Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	}
	return start, end.UTC(), nil
}
