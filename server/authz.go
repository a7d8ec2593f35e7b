package server

import (
	"context"
	"fmt"

	"github.com/daskgate/daskgate/cluster"
)

// Action is what a user wants to do.
type Action string

// Actions a policy can be asked about.
const (
	ActionCreate    Action = "create"
	ActionList      Action = "list"
	ActionView      Action = "view"
	ActionScale     Action = "scale"
	ActionAdapt     Action = "adapt"
	ActionStop      Action = "stop"
	ActionDashboard Action = "dashboard"
)

// AuthzRequest is one authorization question.
type AuthzRequest struct {
	User    *cluster.User
	Action  Action
	Cluster *cluster.Cluster // nil for create and list
}

// Authorizer answers authorization questions. A denial carries the reason
// shown to the user.
type Authorizer interface {
	Authorize(ctx context.Context, req AuthzRequest) (allow bool, reason string, err error)
}

// OwnerOnly is upstream's rule: anyone may create and list (their own),
// and only a cluster's owner may act on it.
type OwnerOnly struct{}

// Authorize allows create and list, and per-cluster actions to the owner.
func (OwnerOnly) Authorize(_ context.Context, req AuthzRequest) (bool, string, error) {
	if req.Cluster == nil || req.Cluster.Username == req.User.Name {
		return true, "", nil
	}
	verb := "view"
	if req.Action == ActionStop {
		verb = "stop"
	}
	return false, fmt.Sprintf("User %s lacks permissions to %s cluster %s", req.User.Name, verb, req.Cluster.Name), nil
}
