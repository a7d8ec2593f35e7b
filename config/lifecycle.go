package config

import (
	"errors"

	"github.com/daskgate/daskgate/cluster"
)

// UI configures the web page of a user's clusters at <prefix>/ui/.
type UI struct {
	// Enabled serves the page (behind the API's login); true by default.
	Enabled bool `json:"enabled"`
}

// Lifecycle configures the stops the gateway makes by itself.
type Lifecycle struct {
	// CheckPeriod is how often running clusters (their schedulers'
	// client counts) and, with StopWithHubServer, the hub are checked.
	CheckPeriod cluster.Duration `json:"check_period"`
	// StopWithHubServer stops all of a user's clusters once the user has
	// had no JupyterHub server running (or starting) for HubServerGrace:
	// a notebook shut down or culled takes its clusters with it. Needs
	// auth.type jupyterhub and a service token allowed read:users:name
	// and read:servers.
	StopWithHubServer bool             `json:"stop_with_hub_server"`
	HubServerGrace    cluster.Duration `json:"hub_server_grace"`
}

func (c *Config) validateLifecycle() error {
	var errs []error
	if c.Lifecycle.CheckPeriod <= 0 {
		errs = append(errs, errors.New("lifecycle.check_period: must be > 0"))
	}
	if c.Lifecycle.HubServerGrace < 0 {
		errs = append(errs, errors.New("lifecycle.hub_server_grace: must be >= 0"))
	}
	if c.Lifecycle.StopWithHubServer && c.Auth.Type != "jupyterhub" {
		errs = append(errs, errors.New("lifecycle.stop_with_hub_server: needs auth.type jupyterhub"))
	}
	return errors.Join(errs...)
}
