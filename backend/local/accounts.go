package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
)

// Accounts maps gateway users to the OS accounts their clusters run as
// (isolation "user", like upstream's LocalBackend): an existing account
// of the user's name, unless it is a system one (uid below 1000, root
// included); otherwise a uid from a range, allocated once and remembered
// in a file, so a user keeps their uid across restarts. Allocated uids
// have no passwd entry: their processes get HOME set to the work dir.
type Accounts struct {
	path     string
	min, max int

	mu sync.Mutex
	m  map[string]int
}

// minRegularUID is the first uid of a regular (not system) account.
const minRegularUID = 1000

// NewAccounts loads the allocations in path (created when missing).
func NewAccounts(path string, min, max int) (*Accounts, error) {
	if min < minRegularUID || max < min {
		return nil, fmt.Errorf("uid range [%d, %d]: want %d <= min <= max", min, max, minRegularUID)
	}
	a := &Accounts{path: path, min: min, max: max, m: map[string]int{}}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &a.m); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return a, nil
}

// Lookup returns the uid and gid user's processes run as.
func (a *Accounts) Lookup(name string) (uid, gid int, err error) {
	if u, err := user.Lookup(name); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if uid < minRegularUID {
			return 0, 0, fmt.Errorf("user %s is the system account uid %d: clusters never run as a system account", name, uid)
		}
		return uid, gid, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if uid, ok := a.m[name]; ok {
		return uid, uid, nil
	}
	used := make(map[int]bool, len(a.m))
	for _, u := range a.m {
		used[u] = true
	}
	for uid := a.min; uid <= a.max; uid++ {
		if used[uid] {
			continue
		}
		if _, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			continue // an account of someone else's
		}
		a.m[name] = uid
		if err := a.save(); err != nil {
			delete(a.m, name)
			return 0, 0, err
		}
		return uid, uid, nil
	}
	return 0, 0, fmt.Errorf("no free uid left in [%d, %d] for user %s", a.min, a.max, name)
}

func (a *Accounts) save() error {
	b, err := json.Marshal(a.m)
	if err != nil {
		return err
	}
	tmp := a.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, a.path)
}

// chownTree gives the work dir and everything written in it to uid:gid.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
