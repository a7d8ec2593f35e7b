package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

// hubServers is the part of the hub's user model that lists servers
// (present with the read:servers scope): one entry per active server.
type hubServers struct {
	Name    string `json:"name"`
	Servers *map[string]struct {
		Ready   bool    `json:"ready"`
		Pending *string `json:"pending"` // "spawn", "stop", "check" or null
		Stopped bool    `json:"stopped"`
	} `json:"servers"`
}

// ServerRunning asks the hub, with the gateway's service token, whether
// user has a server that is running or starting (default or named). The
// token needs read:users:name and read:servers on the user (a role in
// the hub's load_roles); a reply without servers is an error naming the
// scope, so a missing grant never reads as "no server". A user the hub
// does not know has no server.
func (j *JupyterHub) ServerRunning(ctx context.Context, user string) (bool, error) {
	if j.cfg.ServiceToken == "" {
		return false, fmt.Errorf("no service token to ask the hub about servers")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.cfg.APIURL+"/users/"+url.PathEscape(user), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "token "+string(j.cfg.ServiceToken))
	resp, body, err := j.do(req)
	switch {
	case err != nil:
		return false, fmt.Errorf("ask the hub about %s's servers: %w", user, err)
	case resp.StatusCode == http.StatusNotFound:
		// The hub says 404 both for an unknown user and for one the
		// token's scopes do not cover: never read it as "no server".
		return false, fmt.Errorf("the hub does not show user %s (unknown, or the gateway's read:users:name/read:servers grant does not cover them)", user)
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		return false, fmt.Errorf("the hub refused to show %s (%s): grant the gateway's service read:users:name and read:servers", user, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("the hub answered %s for user %s", resp.Status, user)
	}
	var m hubServers
	if err := json.Unmarshal(body, &m); err != nil {
		return false, fmt.Errorf("the hub's user model for %s: %w", user, err)
	}
	if m.Servers == nil {
		return false, fmt.Errorf("the hub's reply for %s lists no servers: grant the gateway's service the read:servers scope", user)
	}
	for _, s := range *m.Servers {
		if !s.Stopped && (s.Ready || (s.Pending != nil && *s.Pending != "stop")) {
			return true, nil
		}
	}
	return false, nil
}
