package local

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openBeneath opens rel inside dir the way a root process must open
// files in a directory a tenant owns (isolation "user"): no symlink
// anywhere on the way and nothing outside dir (openat2 RESOLVE_BENEATH,
// RESOLVE_NO_SYMLINKS), and only a regular file with one link, so a
// planted symlink or hard link can never make the gateway write, or hand
// over, a file elsewhere (/etc/shadow, say). dir itself sits in a
// directory only root may change.
func openBeneath(dir, rel string, flags int, perm uint32) (*os.File, error) {
	d, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_PATH, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(d)
	fd, err := unix.Openat2(d, rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW), Mode: uint64(perm),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Join(dir, rel), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir, rel))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		f.Close()
		return nil, fmt.Errorf("open %s: not a plain file of its own", f.Name())
	}
	return f, nil
}
