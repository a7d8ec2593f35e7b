package server

import (
	"context"
	"fmt"

	"github.com/daskgate/daskgate/cluster"
)

// Authorizer answers authorization questions. A denial carries the reason
// shown to the user. Policies implement it.
type Authorizer interface {
	Authorize(ctx context.Context, req cluster.AuthzRequest) (allow bool, reason string, err error)
}

// OwnerOnly is upstream's rule: anyone may create and list (their own),
// and only a cluster's owner may act on it.
type OwnerOnly struct{}

// Authorize allows create and list, and per-cluster actions to the owner.
func (OwnerOnly) Authorize(_ context.Context, req cluster.AuthzRequest) (bool, string, error) {
	if req.Cluster == nil || req.Cluster.Username == req.User.Name {
		return true, "", nil
	}
	verb := "view"
	if req.Action == cluster.ActionStop {
		verb = "stop"
	}
	return false, fmt.Sprintf("User %s lacks permissions to %s cluster %s", req.User.Name, verb, req.Cluster.Name), nil
}
