package local

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

func TestAccounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.json")
	a, err := NewAccounts(path, 700000000, 700000002)
	if err != nil {
		t.Fatal(err)
	}
	// Names are not accounts unless configured: "root" gets a uid of its own.
	if uid, _, err := a.Lookup("root"); err != nil || uid < 700000000 {
		t.Fatalf("root: %d %v", uid, err)
	}
	alice, _, err := a.Lookup("alice-no-such-account")
	if err != nil {
		t.Fatal(err)
	}
	bob, gid, err := a.Lookup("bob-no-such-account")
	if err != nil || bob == alice || gid != bob || alice < 700000000 || bob > 700000002 {
		t.Fatalf("alice %d, bob %d/%d, %v", alice, bob, gid, err)
	}
	// Remembered across restarts.
	again, err := NewAccounts(path, 700000000, 700000002)
	if err != nil {
		t.Fatal(err)
	}
	if uid, _, _ := again.Lookup("alice-no-such-account"); uid != alice {
		t.Fatalf("alice's uid changed: %d -> %d", alice, uid)
	}
	if _, _, err := again.Lookup("dave-no-such-account"); err == nil {
		t.Fatal("allocated beyond the range")
	}
	if _, err := NewAccounts(path, 10, 20); err == nil {
		t.Fatal("a range of system uids was accepted")
	}
	// With existing accounts on: a system account's name never becomes
	// its uid; a regular one is used as it is.
	a.UseExisting = true
	if _, _, err := a.Lookup("root"); err == nil {
		t.Fatal("root was accepted")
	}
	if u, err := user.LookupId("65534"); err == nil { // nobody: its uid (not its name) decides
		uid, _ := strconv.Atoi(u.Uid)
		got, _, err := a.Lookup(u.Username)
		if (uid < minRegularUID) != (err != nil) || (err == nil && got != uid) {
			t.Errorf("account %s uid %d: %d %v", u.Username, uid, got, err)
		}
	}
	// Subordinate ranges are skipped.
	sub := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(sub, []byte("someone:700000010:5\n"), 0o644)
	saved := subordinateFiles
	subordinateFiles = []string{sub}
	defer func() { subordinateFiles = saved }()
	b, _ := NewAccounts(filepath.Join(t.TempDir(), "a.json"), 700000010, 700000015)
	if uid, _, err := b.Lookup("erin-no-such-account"); err != nil || uid != 700000015 {
		t.Fatalf("allocation in a subordinate range: %d %v", uid, err)
	}
}
