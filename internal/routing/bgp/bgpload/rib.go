package main

import (
	"errors"

	"github.com/netledger/netledger/internal/routing"
)

// newRIB returns the router's RIB; until team rib's routing.NewRIB lands, only -rib null works.
func newRIB() (routing.Updater, error) {
	return nil, errors.New("routing.NewRIB is not available yet: use -rib null")
}
