// Package kerberos authenticates API users with Kerberos tickets over
// SPNEGO ("Authorization: Negotiate <token>"), as upstream's
// KerberosAuthenticator does, in one round trip, and answers with the
// mutual-authentication token (an AP-REP) that the real client (pykerberos,
// which asks for GSS_C_MUTUAL_FLAG) requires on the 200. gokrb5 validates
// tickets; it does not build that reply, so it is built here. gokrb5 is
// imported by this package only.
//
//	k, err := kerberos.New(kerberos.Config{Keytab: "/etc/dask/http.keytab"})
//	user, reply, err := k.AuthenticateMutual(r) // reply: WWW-Authenticate on the 200
package kerberos

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/service"
)

// Config configures Kerberos authentication.
type Config struct {
	// Keytab holds the service's keys; unreadable is an error at New.
	Keytab string
	// ServiceName is the service part of the principal tickets must be
	// for (ServiceName/host@REALM); empty means "HTTP".
	ServiceName string
	// MaxClockSkew is the tolerated clock difference; zero means 5 min.
	MaxClockSkew time.Duration
}

// Authenticator checks Negotiate tokens against the keytab.
type Authenticator struct {
	kt  *keytab.Keytab
	cfg Config
}

// New loads the keytab.
func New(cfg Config) (*Authenticator, error) {
	if cfg.ServiceName == "" {
		cfg.ServiceName = "HTTP"
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = 5 * time.Minute
	}
	kt, err := keytab.Load(cfg.Keytab)
	if err != nil {
		return nil, fmt.Errorf("auth.keytab %s: %w", cfg.Keytab, err)
	}
	if len(kt.Entries) == 0 {
		return nil, fmt.Errorf("auth.keytab %s: no keys", cfg.Keytab)
	}
	return &Authenticator{kt: kt, cfg: cfg}, nil
}

// Scheme is "Negotiate".
func (*Authenticator) Scheme() string { return "Negotiate" }

// Authenticate is AuthenticateMutual without the reply.
func (a *Authenticator) Authenticate(r *http.Request) (*cluster.User, error) {
	u, _, err := a.AuthenticateMutual(r)
	return u, err
}

// AuthenticateMutual verifies the request's ticket and returns its user
// (the client principal without the realm) and the header the response
// must carry: WWW-Authenticate: Negotiate <AP-REP token>. A missing,
// malformed, expired, replayed or foreign ticket is auth.ErrUnauthorized.
func (a *Authenticator) AuthenticateMutual(r *http.Request) (*cluster.User, http.Header, error) {
	kind, cred, ok := auth.SplitAuthorization(r)
	if !ok || !strings.EqualFold(kind, "Negotiate") {
		return nil, nil, auth.ErrUnauthorized
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil || len(raw) == 0 || len(raw) > 64<<10 {
		return nil, nil, auth.ErrUnauthorized
	}
	tok, err := parseToken(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", auth.ErrUnauthorized, err)
	}
	if sname := tok.apReq.Ticket.SName.NameString; len(sname) == 0 || sname[0] != a.cfg.ServiceName {
		return nil, nil, fmt.Errorf("%w: ticket for %v, not %s", auth.ErrUnauthorized, sname, a.cfg.ServiceName)
	}
	settings := service.NewSettings(a.kt, service.MaxClockSkew(a.cfg.MaxClockSkew), service.DecodePAC(false))
	valid, creds, err := service.VerifyAPREQ(&tok.apReq, settings)
	if err != nil || !valid {
		return nil, nil, fmt.Errorf("%w: %v", auth.ErrUnauthorized, err)
	}
	reply, err := tok.reply()
	if err != nil {
		return nil, nil, err
	}
	user := &cluster.User{Name: creds.CName().PrincipalNameString(), Groups: []string{}}
	if user.Name == "" {
		return nil, nil, errors.Join(auth.ErrUnauthorized, errors.New("ticket without a client name"))
	}
	h := http.Header{"Www-Authenticate": {"Negotiate " + base64.StdEncoding.EncodeToString(reply)}}
	return user, h, nil
}
