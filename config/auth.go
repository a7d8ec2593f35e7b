package config

import (
	"net"
	"strings"

	"github.com/daskgate/daskgate/cluster"
)

// Auth configures user authentication.
type Auth struct {
	// Type is "simple" (HTTP Basic) or "jupyterhub" (the user's hub token).
	Type string `json:"type"`
	// Password, if set, is required of every user (simple auth).
	Password string `json:"password"`
	// CacheMaxAge is how long a session cookie stays valid, and with
	// jupyterhub also how long a verified hub token is trusted without
	// asking the hub again: a revoked token stops working within it.
	CacheMaxAge cluster.Duration `json:"cache_max_age"`
	// JupyterHubAPIURL is the hub's API URL (http://hub:8081/hub/api);
	// empty means $JUPYTERHUB_API_URL.
	JupyterHubAPIURL string `json:"jupyterhub_api_url"`
	// JupyterHubAPIToken is the gateway's own service token; empty means
	// $JUPYTERHUB_API_TOKEN. Required as upstream requires it; users are
	// checked with their own tokens.
	JupyterHubAPIToken string `json:"jupyterhub_api_token"`
	// JupyterHubServiceName is the gateway's service name in the hub;
	// empty means $JUPYTERHUB_SERVICE_NAME.
	JupyterHubServiceName string `json:"jupyterhub_service_name"`
	// UseServiceAccessScopes requires the access:services scope for this
	// service of every token; null means on when a service name is known.
	UseServiceAccessScopes *bool `json:"use_service_access_scopes"`
	// TLSCert, TLSKey and TLSCA are the client certificate, its key and
	// the CA bundle used when calling the hub (cert and key together).
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key"`
	TLSCA   string `json:"tls_ca"`
	// HubTimeout bounds each call to the hub; zero means 10s.
	HubTimeout cluster.Duration `json:"hub_timeout"`
	// DashboardLogin sends browsers without a session that open a
	// dashboard to sign in at the hub (OAuth); null means on with
	// jupyterhub auth.
	DashboardLogin *bool `json:"dashboard_login"`
	// JupyterHubOAuthAuthorizeURL is the hub's authorize endpoint as the
	// browser reaches it; empty means $JUPYTERHUB_BASE_URL (else "/")
	// followed by hub/api/oauth2/authorize.
	JupyterHubOAuthAuthorizeURL string `json:"jupyterhub_oauth_authorize_url"`
	// JupyterHubOAuthClientID is the gateway's OAuth client id; empty
	// means $JUPYTERHUB_CLIENT_ID, else service-<service name>.
	JupyterHubOAuthClientID string `json:"jupyterhub_oauth_client_id"`
	// JupyterHubOAuthRedirectURI is the callback registered in the hub;
	// empty means $JUPYTERHUB_OAUTH_CALLBACK_URL, else
	// <prefix>/oauth_callback.
	JupyterHubOAuthRedirectURI string `json:"jupyterhub_oauth_redirect_uri"`
	// Keytab holds the gateway's Kerberos service keys (kerberos auth).
	Keytab string `json:"keytab"`
	// ServiceName is the Kerberos service tickets must be for
	// (ServiceName/host@REALM).
	ServiceName string `json:"service_name"`
}

// SignsInBrowsers reports whether dashboards send browsers without a
// session to sign in at the hub: jupyterhub auth with dashboard_login on.
func (a *Auth) SignsInBrowsers() bool {
	return a.Type == "jupyterhub" && (a.DashboardLogin == nil || *a.DashboardLogin)
}

// hubEnvDefaults fills the JupyterHub settings left empty from the
// variables a hub sets for its services.
func (a *Auth) hubEnvDefaults(environ []string) {
	get := func(k string) string {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	for _, d := range []struct {
		field *string
		env   string
	}{{&a.JupyterHubAPIURL, "JUPYTERHUB_API_URL"}, {&a.JupyterHubAPIToken, "JUPYTERHUB_API_TOKEN"}, {&a.JupyterHubServiceName, "JUPYTERHUB_SERVICE_NAME"},
		{&a.JupyterHubOAuthClientID, "JUPYTERHUB_CLIENT_ID"}, {&a.JupyterHubOAuthRedirectURI, "JUPYTERHUB_OAUTH_CALLBACK_URL"}} {
		if *d.field == "" {
			*d.field = get(d.env)
		}
	}
	if host := get("HUB_SERVICE_HOST"); a.JupyterHubAPIURL == "" && host != "" {
		// The service links of a Service named hub in the same namespace
		// (the JupyterHub chart's), as upstream's chart infers them.
		port := get("HUB_SERVICE_PORT")
		if port == "" {
			port = "8081"
		}
		a.JupyterHubAPIURL = "http://" + net.JoinHostPort(host, port) + "/hub/api"
	}
	if a.JupyterHubOAuthAuthorizeURL == "" {
		base := get("JUPYTERHUB_BASE_URL")
		if base == "" {
			base = "/"
		}
		a.JupyterHubOAuthAuthorizeURL = strings.TrimRight(base, "/") + "/hub/api/oauth2/authorize"
	}
	a.JupyterHubAPIURL = strings.TrimRight(a.JupyterHubAPIURL, "/")
}
