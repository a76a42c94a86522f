package geo

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxLineErrors is how many bad lines a FileReport keeps (all are counted).
const maxLineErrors = 10

// FileReport says what loading one file gave: counts of lines by outcome and the first bad
// lines, each naming the file and line number. Bad lines never stop a load: the valid lines next
// to them are kept.
type FileReport struct {
	// Path is the file.
	Path string
	// Kind is "mmdb", "rir" or "as-names".
	Kind string
	// Lines is the number of lines read (text files).
	Lines int
	// Records is the number of entries used: networks (mmdb), delegations with a country
	// (RIR), names (as-names).
	Records int
	// Prefixes is the number of prefixes the entries gave (mmdb, RIR).
	Prefixes int
	// Ignored counts valid lines that carry nothing for lookups: comments, headers, summaries,
	// asn records, available/reserved space, ZZ.
	Ignored int
	// Bad counts malformed lines.
	Bad int
	// Errors holds the first bad lines (up to 10), as *LineError.
	Errors []error
}

// LineError is a malformed line of a text file.
type LineError struct {
	Path string
	Line int
	Err  error
}

// Error names the file and line.
func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
}

// Unwrap returns the cause.
func (e *LineError) Unwrap() error { return e.Err }

func (r *FileReport) bad(line int, err error) {
	r.Bad++
	if len(r.Errors) < maxLineErrors {
		r.Errors = append(r.Errors, &LineError{Path: r.Path, Line: line, Err: err})
	}
}

// openText opens a text file, transparently gunzipping it when its name ends in .gz.
func openText(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	z, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot read gzip header: %w", err)
	}
	return struct {
		io.Reader
		io.Closer
	}{z, f}, nil
}

// eachLine calls fn for every line of r (without its line ending), with 1-based line numbers.
// Lines longer than 64 KiB are reported to fn as errTooLong and skipped.
func eachLine(r io.Reader, fn func(n int, line []byte, err error)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 || err == nil {
			n++
			if errors.Is(err, bufio.ErrBufferFull) {
				fn(n, nil, errTooLong)
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
			} else {
				fn(n, bytes.TrimRight(line, "\r\n"), nil)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

var errTooLong = errors.New("line longer than 64 KiB")

// ReadRIR reads an RIR delegated or delegated-extended statistics file from r and calls fn for
// each resource record with a country (see RIRRecord.HasCountry). Malformed lines are counted
// in the report (named path) and skipped.
func ReadRIR(r io.Reader, path string, fn func(RIRRecord)) (FileReport, error) {
	rep := FileReport{Path: path, Kind: "rir"}
	err := eachLine(r, func(n int, line []byte, err error) {
		rep.Lines++
		if err != nil {
			rep.bad(n, err)
			return
		}
		rec, ok, err := ParseRIRLine(line)
		switch {
		case err != nil:
			rep.bad(n, err)
		case !ok || !rec.HasCountry() || rec.Type == RIRASN:
			rep.Ignored++
		default:
			rep.Records++
			fn(rec)
		}
	})
	if err != nil {
		return rep, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return rep, nil
}

// ParseASNamesLine parses one line of an AS names file: `asn<TAB>name`, the number optionally
// written AS64500. Blank lines and # comments return ok=false without error.
func ParseASNamesLine(line []byte) (asn uint32, name string, ok bool, err error) {
	line = bytes.TrimRight(line, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
		return 0, "", false, nil
	}
	i := bytes.IndexByte(line, '\t')
	if i < 0 {
		return 0, "", false, errors.New("no tab between AS number and name")
	}
	num := line[:i]
	if len(num) > 2 && (num[0] == 'A' || num[0] == 'a') && (num[1] == 'S' || num[1] == 's') {
		num = num[2:]
	}
	v, err := strconv.ParseUint(string(num), 10, 32)
	if err != nil {
		return 0, "", false, fmt.Errorf("invalid AS number %q", line[:i])
	}
	n := bytes.TrimSpace(line[i+1:])
	if len(n) == 0 {
		return 0, "", false, fmt.Errorf("empty name for AS%d", v)
	}
	return uint32(v), string(n), true, nil
}

// ReadASNames reads an AS names file from r and calls fn for each name. Malformed lines are
// counted in the report (named path) and skipped.
func ReadASNames(r io.Reader, path string, fn func(asn uint32, name string)) (FileReport, error) {
	rep := FileReport{Path: path, Kind: "as-names"}
	err := eachLine(r, func(n int, line []byte, err error) {
		rep.Lines++
		if err != nil {
			rep.bad(n, err)
			return
		}
		asn, name, ok, err := ParseASNamesLine(line)
		switch {
		case err != nil:
			rep.bad(n, err)
		case !ok:
			rep.Ignored++
		default:
			rep.Records++
			fn(asn, name)
		}
	})
	if err != nil {
		return rep, fmt.Errorf("cannot read %s: %w", path, err)
	}
	return rep, nil
}
