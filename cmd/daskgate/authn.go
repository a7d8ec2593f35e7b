package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/auth/kerberos"
	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/config"
	"github.com/daskgate/daskgate/server"
)

// newAuthenticator builds the configured authentication scheme and, with
// jupyterhub, the browser sign-in for dashboards (nil when off); an
// unreadable keytab or a missing hub setting is an error here, at startup.
func newAuthenticator(c config.Auth, prefix string, log *slog.Logger) (auth.Authenticator, server.Login, error) {
	switch c.Type {
	case "kerberos":
		log.Info("Kerberos authentication", "keytab", c.Keytab, "service_name", c.ServiceName)
		k, err := kerberos.New(kerberos.Config{Keytab: c.Keytab, ServiceName: c.ServiceName})
		return k, nil, err
	case "simple":
		return auth.NewSimple(c.Password), nil, nil
	}
	scopes := c.JupyterHubServiceName != ""
	if c.UseServiceAccessScopes != nil {
		scopes = *c.UseServiceAccessScopes
	}
	if !scopes {
		log.Warn("JupyterHub access scopes are not checked: any valid hub token may use the gateway",
			"setting", "auth.use_service_access_scopes", "service_name", c.JupyterHubServiceName)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.TLSCA != "" || c.TLSCert != "" {
		tc, err := hubTLS(c)
		if err != nil {
			return nil, nil, err
		}
		tr.TLSClientConfig = tc
	}
	timeout := time.Duration(c.HubTimeout)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	login := c.SignsInBrowsers()
	oauth := auth.HubOAuth{AuthorizeURL: c.JupyterHubOAuthAuthorizeURL, ClientID: c.JupyterHubOAuthClientID,
		ClientSecret: c.JupyterHubAPIToken, RedirectURI: c.JupyterHubOAuthRedirectURI}
	if oauth.ClientID == "" {
		oauth.ClientID = "service-" + c.JupyterHubServiceName
	}
	if oauth.RedirectURI == "" {
		oauth.RedirectURI = prefix + "/oauth_callback"
	}
	if !login {
		oauth = auth.HubOAuth{}
	}
	log.Info("JupyterHub authentication", "api_url", c.JupyterHubAPIURL, "service_name", c.JupyterHubServiceName,
		"access_scopes", scopes, "token_cache", time.Duration(c.CacheMaxAge).String(),
		"dashboard_login", login, "oauth_client_id", oauth.ClientID, "oauth_redirect_uri", oauth.RedirectURI)
	hub, err := auth.NewJupyterHub(auth.JupyterHubConfig{
		APIURL: c.JupyterHubAPIURL, ServiceName: c.JupyterHubServiceName, UseServiceAccessScopes: scopes,
		Client: &http.Client{Transport: tr, Timeout: timeout}, CacheTTL: time.Duration(c.CacheMaxAge), OAuth: oauth,
		ServiceToken: cluster.Secret(c.JupyterHubAPIToken),
	})
	if err != nil || !login {
		return hub, nil, err
	}
	return hub, hub, nil
}

// hubTLS is the TLS configuration for calling the hub: a CA bundle and a
// client certificate, each if configured.
func hubTLS(c config.Auth) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCA != "" {
		pem, err := os.ReadFile(c.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("auth.tls_ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("auth.tls_ca: no certificates in %s", c.TLSCA)
		}
	}
	if c.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("auth.tls_cert/tls_key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
