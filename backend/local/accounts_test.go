package local

import (
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

func TestAccounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	a, err := NewAccounts(path, 250000, 250002)
	if err != nil {
		t.Fatal(err)
	}
	// A system account's name never becomes its uid.
	if _, _, err := a.Lookup("root"); err == nil {
		t.Fatal("root was accepted")
	}
	alice, _, err := a.Lookup("alice-no-such-account")
	if err != nil {
		t.Fatal(err)
	}
	bob, gid, err := a.Lookup("bob-no-such-account")
	if err != nil || bob == alice || gid != bob || alice < 250000 || bob > 250002 {
		t.Fatalf("alice %d, bob %d/%d, %v", alice, bob, gid, err)
	}
	// Remembered across restarts.
	again, err := NewAccounts(path, 250000, 250002)
	if err != nil {
		t.Fatal(err)
	}
	if uid, _, _ := again.Lookup("alice-no-such-account"); uid != alice {
		t.Fatalf("alice's uid changed: %d -> %d", alice, uid)
	}
	if _, _, err := again.Lookup("carol-no-such-account"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := again.Lookup("dave-no-such-account"); err == nil {
		t.Fatal("allocated beyond the range")
	}
	if _, err := NewAccounts(path, 10, 20); err == nil {
		t.Fatal("a range of system uids was accepted")
	}
	// An existing regular account is used as it is.
	if u, err := user.LookupId("65534"); err == nil { // nobody: its uid (not its name) decides
		uid, _ := strconv.Atoi(u.Uid)
		_, _, err := a.Lookup(u.Username)
		if (uid < minRegularUID) != (err != nil) {
			t.Errorf("account %s uid %d: %v", u.Username, uid, err)
		}
	}
}
