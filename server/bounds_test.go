package server

import (
	"fmt"
	"testing"

	"github.com/daskgate/daskgate/auth"
)

// TestManyUsersLeaveBoundedState: thousands of distinct users creating
// and stopping clusters, and made-up names, leave no per-user lock
// behind, and the session table and encoded-cluster cache stay within
// their bounds.
func TestManyUsersLeaveBoundedState(t *testing.T) {
	sessions := auth.NewSessions(auth.SessionsConfig{Max: 200})
	a := newAPI(t, func(c *Config) { c.Sessions = sessions })
	srv := a.server
	for i := range 2000 {
		user := fmt.Sprintf("user-%d", i)
		name := a.create(user)
		if code, _, _ := a.do("DELETE", "/api/v1/clusters/"+name, user, ""); code != 204 {
			t.Fatalf("stop: %d", code)
		}
		if code, _, _ := a.do("GET", "/api/v1/clusters/made-up-"+user, user, ""); code != 404 {
			t.Fatalf("made-up name: %d", code)
		}
	}
	srv.userLocks.mu.Lock()
	locks := len(srv.userLocks.m)
	srv.userLocks.mu.Unlock()
	encoded := 0
	srv.encoded.m.Range(func(any, any) bool { encoded++; return true })
	t.Logf("after 2000 users: %d user locks, %d sessions (max 200), %d encoded clusters", locks, sessions.Len(), encoded)
	if locks != 0 || sessions.Len() > 200 || encoded > maxEncoded {
		t.Fatalf("%d user locks, %d sessions, %d encoded", locks, sessions.Len(), encoded)
	}
}
