package routers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/netledger/netledger/internal/routing/mrt"
)

// API paths (the rib commands are their clients).
const (
	// StatusPath answers GET with []Status.
	StatusPath = "/api/v1/routing/routers"
	// LookupPath answers GET ?address=A&address=B… with []Route.
	LookupPath = "/api/v1/routing/routers/{router}/lookup"
	// LoadPath takes POST multipart/form-data of MRT files (?peer=… optional) and answers
	// LoadResult. It replaces a table, so it answers only clients on the daemon's host (the
	// rib commands), also when http.listen is opened to other hosts for /metrics, and it
	// reads at most MaxUploadBytes.
	LoadPath = "/api/v1/routing/routers/{router}/load"
)

// MaxUploadBytes bounds the body of a load: the MRT files as sent (compressed or not). A
// full-table RIB dump of a route collector with dozens of peers is a few hundred MB gzipped.
const MaxUploadBytes = 4 << 30

// LoadResult is the answer of a load: the load and the router's state after it.
type LoadResult struct {
	Load   LoadStatus `json:"load"`
	Router Status     `json:"router"`
}

// Mount registers the API handlers with handle (api.Server.Handle).
func (c *Component) Mount(handle func(pattern string, h http.Handler)) {
	handle("GET "+StatusPath, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	}))
	handle("GET "+LookupPath, http.HandlerFunc(c.serveLookup))
	handle("POST "+LoadPath, http.HandlerFunc(c.serveLoad))
}

func (c *Component) serveLookup(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()["address"]
	addrs := make([]netip.Addr, 0, len(q))
	for _, s := range q {
		a, err := netip.ParseAddr(s)
		if err != nil {
			httpError(w, http.StatusBadRequest, fmt.Errorf("bad address %q", s))
			return
		}
		addrs = append(addrs, a)
	}
	routes, err := c.Lookup(req.PathValue("router"), addrs...)
	if err != nil {
		httpError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, routes)
}

func (c *Component) serveLoad(w http.ResponseWriter, req *http.Request) {
	if !fromThisHost(req) {
		httpError(w, http.StatusForbidden, errors.New("tables are loaded only from the daemon's own host"))
		return
	}
	body := &boundedBody{ReadCloser: http.MaxBytesReader(w, req.Body, c.maxUpload)}
	req.Body = body
	name := req.PathValue("router")
	peer, err := mrt.ParsePeerSelector(req.URL.Query().Get("peer"))
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	mr, err := req.MultipartReader()
	if err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("want multipart/form-data of MRT files: %w", err))
		return
	}
	var prev *mrt.Reader
	st, err := c.LoadReaders(name, peer, func() (string, *mrt.Reader, error) {
		if prev != nil {
			prev.Close()
		}
		part, err := mr.NextPart()
		if err != nil {
			return "", nil, err
		}
		fname := part.FileName()
		if fname == "" {
			fname = part.FormName()
		}
		prev, err = mrt.NewReader(part)
		if err != nil {
			return "", nil, fmt.Errorf("%s: %w", fname, err)
		}
		return fname, prev, nil
	})
	if err != nil {
		code := statusOf(err)
		if body.exceeded { // the decoders do not all wrap the reader's error
			code, err = http.StatusRequestEntityTooLarge, fmt.Errorf("upload larger than %d bytes: %w", c.maxUpload, err)
		} else if code == http.StatusInternalServerError {
			code = http.StatusUnprocessableEntity // the files' fault: their error names the offset
		}
		httpError(w, code, err)
		return
	}
	res := LoadResult{Load: st}
	for _, s := range c.Status() {
		if s.Name == name {
			res.Router = s
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// boundedBody notes whether its http.MaxBytesReader refused to read on.
type boundedBody struct {
	io.ReadCloser
	exceeded bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		b.exceeded = true
	}
	return n, err
}

// fromThisHost reports whether req comes from this host: from a loopback address, or from
// the address it was sent to (a client on this host calling the API on a LAN address).
func fromThisHost(req *http.Request) bool {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return false
	}
	remote := ap.Addr().Unmap()
	if remote.IsLoopback() {
		return true
	}
	local, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lp, err := netip.ParseAddrPort(local.String())
	return err == nil && lp.Addr().Unmap() == remote
}

func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrUnknownRouter):
		return http.StatusNotFound
	case errors.Is(err, ErrSessionFed):
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// apiError is the body of an error answer.
type apiError struct {
	Error string `json:"error"`
}

func httpError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, apiError{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
