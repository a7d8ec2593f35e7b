package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Accounts maps gateway users to the OS accounts their clusters run as
// (isolation "user"): a uid from a range, allocated once and remembered in
// a file, so a user keeps their uid across restarts (no passwd entry:
// processes get HOME in the work dir). With UseExisting, as upstream's
// LocalBackend, a user with an OS account of their name runs as it,
// unless it is a system account (uid below 1000) or may administer the
// machine (a member of sudo, wheel, admin or root) — only sound with an
// authenticator that proves the OS identity (Kerberos), since simple auth
// lets anyone claim any name.
type Accounts struct {
	path        string
	min, max    int
	UseExisting bool

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

// adminGroups may administer a machine: their members never run clusters.
var adminGroups = []string{"sudo", "wheel", "admin", "root"}

// Lookup returns the uid and gid user's processes run as.
func (a *Accounts) Lookup(name string) (uid, gid int, err error) {
	if u, err := user.Lookup(name); err == nil && a.UseExisting {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if uid < minRegularUID {
			return 0, 0, fmt.Errorf("user %s is the system account uid %d: clusters never run as a system account", name, uid)
		}
		gids, _ := u.GroupIds()
		for _, g := range gids {
			if grp, err := user.LookupGroupId(g); err == nil && slices.Contains(adminGroups, grp.Name) {
				return 0, 0, fmt.Errorf("user %s may administer this machine (group %s): clusters never run as such an account", name, grp.Name)
			}
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
		if _, err := user.LookupGroupId(strconv.Itoa(uid)); err == nil {
			continue // the gid is a group of someone else's
		}
		if inSubordinateRange(uid) {
			continue // another user may map it in a user namespace
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

// subordinateFiles list the uid and gid ranges users may map into their
// user namespaces (rootless containers): a uid there is not ours to give.
var subordinateFiles = []string{"/etc/subuid", "/etc/subgid"}

func inSubordinateRange(id int) bool {
	for _, f := range subordinateFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.Split(strings.TrimSpace(line), ":")
			if len(parts) != 3 {
				continue
			}
			start, err1 := strconv.Atoi(parts[1])
			n, err2 := strconv.Atoi(parts[2])
			if err1 == nil && err2 == nil && id >= start && id < start+n {
				return true
			}
		}
	}
	return false
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
// It follows no symlink and skips any file with more than one link, so an
// entry a tenant planted on a retried launch can never hand over a file
// outside the work dir.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&os.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !d.IsDir() && st.Nlink != 1 {
			return nil
		}
		return os.Lchown(p, uid, gid)
	})
}
