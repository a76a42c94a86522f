package daemon

import (
	"context"
	"fmt"

	"github.com/netledger/netledger/internal/enrich"
	"github.com/netledger/netledger/internal/pipeline"
	"github.com/netledger/netledger/internal/routing/routers"
	"github.com/netledger/netledger/internal/store/sqlite"
)

// DefaultRouter is the name of the router every record goes to when no router is configured
// (every client is then unrouted).
const DefaultRouter = "default"

// EnrichRouters returns the routers the enrichment selects from: rc's routers with their live
// tables, in configuration order, or one router named DefaultRouter without a table when none
// is configured.
func EnrichRouters(rc *routers.Component) []enrich.Router {
	if rs := tables(rc); len(rs) > 0 {
		return rs
	}
	return []enrich.Router{{Name: DefaultRouter}}
}

// tables returns rc's routers with their live tables, in configuration order.
func tables(rc *routers.Component) []enrich.Router {
	rs := rc.Routers()
	out := make([]enrich.Router, len(rs))
	for i, r := range rs {
		out[i] = enrich.Router{Name: r.Name, ASN: r.ASN, Networks: r.Networks, Table: r.RIB}
	}
	return out
}

// addAccounting opens the embedded store and wires the accounting pipeline: spool →
// enrichment (routers, geo) → views → store, rows committed with the spool position.
func (d *Daemon) addAccounting(opts ...sqlite.Option) error {
	st, err := sqlite.Open(context.Background(), d.Config.StoreConfig(), opts...)
	if err != nil {
		return fmt.Errorf("cannot open the store: %w", err)
	}
	d.closers = append(d.closers, st.Close)
	d.Store = st
	d.consumers = append(d.consumers, st) // applies the retention every hour
	d.Registry.MustRegister(st.Collectors()...)
	var g enrich.Geo
	if d.Geo != nil {
		g = d.Geo
	}
	p, err := pipeline.New(d.Config.Accounting, pipeline.Deps{
		Spool:      d.Spool,
		Store:      st,
		Enricher:   enrich.New(EnrichRouters(d.Routing), g),
		Ready:      d.Routing.Started(),
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
