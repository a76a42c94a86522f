package main

import "github.com/netledger/netledger/internal/routing"

// newRIB returns the router's RIB.
func newRIB() (routing.Updater, error) { return routing.NewRIB(), nil }
