package routers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// LoadResult.
	LoadPath = "/api/v1/routing/routers/{router}/load"
)

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
		if code == http.StatusInternalServerError {
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
