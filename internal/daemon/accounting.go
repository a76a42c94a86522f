package daemon

import (
	"fmt"

	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/pipeline"
	"github.com/netledger/netledger/internal/store"
)

// DefaultRouter is the name of the router every record goes to when no router is configured
// (every client is then unrouted).
const DefaultRouter = "default"

// enrichRouters returns the routers the enrichment selects from.
func (d *Daemon) enrichRouters() []enrich.Router {
	return []enrich.Router{{Name: DefaultRouter}}
}

// addAccounting wires the accounting pipeline: spool → enrichment (routers, geo) → views →
// st, committed with the spool position.
func (d *Daemon) addAccounting(st store.Store) error {
	var g enrich.Geo
	if d.Geo != nil {
		g = d.Geo
	}
	p, err := pipeline.New(d.Config.Accounting, pipeline.Deps{
		Spool:      d.Spool,
		Store:      st,
		Enricher:   enrich.New(d.enrichRouters(), g),
		ClassName:  d.Config.Report.ClassName,
		Registerer: d.Registry,
		Logger:     d.Logger,
	})
	if err != nil {
		return fmt.Errorf("cannot build the accounting pipeline: %w", err)
	}
	d.Accounting = p
	d.consumers = append(d.consumers, p)
	return nil
}
