package server

import (
	"context"
	"errors"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/options"
)

// OptionHandler supplies a user's option fields and turns their validated
// values into ClusterConfig overrides. Policies implement it.
type OptionHandler interface {
	// Fields returns the fields the user may set.
	Fields(ctx context.Context, u *cluster.User) (*options.Set, error)
	// Handle returns overrides for the user's validated values (by field)
	// and transformed values (by target). A *UserError is shown to the
	// user as a 422. Strict overrides must all be ClusterConfig settings.
	Handle(ctx context.Context, u *cluster.User, values options.Values, transformed map[string]any) (overrides map[string]any, strict bool, err error)
}

// UserError is a handler's message for the user (a 422). Any error with
// a UserMessage() string method counts the same, so handlers need not
// import this package.
type UserError struct{ Msg string }

func (e *UserError) Error() string { return e.Msg }

// UserMessage is the text shown to the user.
func (e *UserError) UserMessage() string { return e.Msg }

func userMessage(err error) (string, bool) {
	var um interface{ UserMessage() string }
	if errors.As(err, &um) {
		return um.UserMessage(), true
	}
	return "", false
}

// StaticOptions serves fixed fields and passes the transformed values
// through as overrides, ignoring keys that are not settings (upstream's
// behaviour without a handler).
type StaticOptions struct{ Set *options.Set }

// Fields returns the static set.
func (o StaticOptions) Fields(context.Context, *cluster.User) (*options.Set, error) {
	if o.Set == nil {
		return &options.Set{}, nil
	}
	return o.Set, nil
}

// Handle passes the transformed values through.
func (StaticOptions) Handle(_ context.Context, _ *cluster.User, _ options.Values, t map[string]any) (map[string]any, bool, error) {
	return t, false, nil
}
