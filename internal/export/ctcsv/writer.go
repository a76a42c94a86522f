package ctcsv

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config says where interval rows go. Every destination gets the same lines.
type Config struct {
	// Stdout writes the lines to standard output (the original's default).
	Stdout bool `yaml:"stdout"`
	// Pipe is a FIFO, created when missing with a large buffer, for Telegraf's tail input.
	Pipe string `yaml:"pipe"`
	// PipeSize is the pipe buffer requested with F_SETPIPE_SZ (the original used 32 MiB).
	PipeSize int `yaml:"pipe_size"`
	// Dir receives one file per interval, traffic_<time>.csv, written to a temporary name
	// and renamed so that a reader never sees half a file.
	Dir string `yaml:"dir"`
	// TrackOpen adds the open_connections column.
	TrackOpen bool `yaml:"track_open"`
}

// DefaultPipeSize is the pipe buffer the original tool asked for.
const DefaultPipeSize = 32 << 20

// Writer delivers interval rows to the configured destinations.
type Writer struct {
	cfg    Config
	stdout io.Writer
	pipe   int // FIFO descriptor (non-blocking, written with write(2) directly), -1 when none
	log    *slog.Logger
	buf    []byte

	// PipeDropped counts lines not written to the FIFO because its buffer was full (no
	// reader); the agent never blocks on a missing reader.
	PipeDropped uint64
}

// Open creates the FIFO and the output folder as needed. stdout receives lines when
// cfg.Stdout is set (nil means os.Stdout).
func Open(cfg Config, stdout io.Writer, logger *slog.Logger) (*Writer, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if stdout == nil {
		stdout = os.Stdout
	}
	w := &Writer{cfg: cfg, stdout: stdout, log: logger, pipe: -1}
	if cfg.Dir != "" {
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create output folder: %w", err)
		}
	}
	if cfg.Pipe != "" {
		p, err := OpenPipe(cfg.Pipe, cfg.PipeSize, logger)
		if err != nil {
			return nil, err
		}
		w.pipe = p
	}
	return w, nil
}

// OpenPipe creates (when missing) and opens a FIFO for non-blocking writes, and enlarges its
// buffer to size bytes (halving on refusal). The FIFO is opened read-write, as the original
// did, so that writes never fail while no reader is attached. It returns the descriptor.
func OpenPipe(path string, size int, logger *slog.Logger) (int, error) {
	if size <= 0 {
		size = DefaultPipeSize
	}
	err := unix.Mkfifo(path, 0o644)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return -1, fmt.Errorf("cannot create pipe %s: %w", path, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return -1, fmt.Errorf("cannot stat pipe %s: %w", path, err)
	}
	if st.Mode()&fs.ModeNamedPipe == 0 {
		return -1, fmt.Errorf("cannot use %s as pipe: not a FIFO", path)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("cannot open pipe %s: %w", path, err)
	}
	for ; size >= 64<<10; size /= 2 {
		if _, err = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, size); err == nil {
			break
		}
	}
	got, _ := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	logger.Info("writing rows to pipe", "path", path, "pipe_buffer", got)
	return fd, nil
}

// Write delivers one interval's rows. Rows whose metrics are all zero are skipped.
func (w *Writer) Write(t time.Time, rows []Row) error {
	w.buf = w.buf[:0]
	for i := range rows {
		if rows[i].Zero() {
			continue
		}
		w.buf = rows[i].Append(w.buf, w.cfg.TrackOpen)
	}
	var errs []error
	if w.cfg.Stdout && len(w.buf) > 0 {
		if _, err := w.stdout.Write(w.buf); err != nil {
			errs = append(errs, fmt.Errorf("cannot write to stdout: %w", err))
		}
	}
	if w.pipe >= 0 && len(w.buf) > 0 {
		if err := w.writePipe(w.buf); err != nil {
			errs = append(errs, err)
		}
	}
	if w.cfg.Dir != "" {
		if err := w.writeFile(t, w.buf); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writePipe writes whole lines in chunks of at most PIPE_BUF bytes, which the kernel writes
// atomically: a reader never sees half a line, and when the buffer is full (nobody reads)
// the remaining lines are dropped and counted instead of blocking the agent.
func (w *Writer) writePipe(b []byte) error {
	const pipeBuf = 4096
	for len(b) > 0 {
		end := 0
		for end < len(b) {
			nl := indexNL(b[end:])
			if nl < 0 {
				nl = len(b) - end - 1
			}
			if end > 0 && end+nl+1 > pipeBuf {
				break
			}
			end += nl + 1
		}
		_, err := unix.Write(w.pipe, b[:end])
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if errors.Is(err, syscall.EAGAIN) {
			n := uint64(0)
			for _, c := range b {
				if c == '\n' {
					n++
				}
			}
			if w.PipeDropped == 0 {
				w.log.Warn("pipe full, dropping rows (is the reader running?)", "path", w.cfg.Pipe)
			}
			w.PipeDropped += n
			return nil
		}
		if err != nil {
			return fmt.Errorf("cannot write to pipe: %w", err)
		}
		b = b[end:]
	}
	return nil
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

// FileName returns the name of the folder file for an interval ending at t, as the
// original named it.
func FileName(t time.Time) string {
	return "traffic_" + t.Format("2006-01-02T15_04_05") + ".csv"
}

func (w *Writer) writeFile(t time.Time, b []byte) error {
	name := filepath.Join(w.cfg.Dir, FileName(t))
	for i := 2; ; i++ {
		if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
			break
		}
		name = filepath.Join(w.cfg.Dir, fmt.Sprintf("traffic_%s-%d.csv", t.Format("2006-01-02T15_04_05"), i))
	}
	tmp := filepath.Join(w.cfg.Dir, "."+filepath.Base(name)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("cannot create interval file: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write interval file %s: %w", name, err)
	}
	return nil
}

// Close closes the FIFO (it stays in place for the next run, as in the original).
func (w *Writer) Close() error {
	if w.pipe >= 0 {
		fd := w.pipe
		w.pipe = -1
		return unix.Close(fd)
	}
	return nil
}
