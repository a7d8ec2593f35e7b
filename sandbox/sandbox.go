// Package sandbox confines a cluster's processes with Landlock, without
// root: each process may write only its cluster's work directory, read
// only the system and interpreter paths it needs, and cannot signal,
// ptrace or read /proc of processes outside its sandbox (another
// tenant's, the gateway's). The gateway re-executes itself as a small
// launcher (`daskgate sandbox-exec`) that applies the rules to itself and
// then execs the real command, so the rules hold for it and everything it
// starts. go-landlock is imported here only.
//
//	if err := sandbox.Check(); err != nil { ... }           // at startup
//	argv = sandbox.Command(self, workdir, readOnly, argv)    // what the backend starts
//	sandbox.Main(os.Args[2:])                                // in the launcher
package sandbox

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// minABI is the oldest Landlock ABI we accept: 3 (Linux 6.2) is the first
// that also governs truncate(2), without which a sandboxed process could
// still truncate files it cannot open for writing.
const minABI = 3

// scopedABI (Linux 6.12) adds signal and abstract-socket scoping.
const scopedABI = 6

// Check reports why sandboxing is unavailable here, or nil. It returns
// the Landlock ABI version for the startup log.
func Check() (abi int, err error) {
	abi, err = llsyscall.LandlockGetABIVersion()
	switch {
	case err != nil:
		return 0, fmt.Errorf("landlock unavailable (kernel too old, or not enabled with lsm=landlock): %w", err)
	case abi < minABI:
		return abi, fmt.Errorf("landlock ABI %d is older than the %d the sandbox needs (Linux 6.2)", abi, minABI)
	}
	return abi, nil
}

// Command is the argv that runs argv inside the sandbox: self (this
// binary) as the launcher, the writable work directory, the read-only
// paths, then the command.
func Command(self, workdir string, readOnly []string, argv []string) []string {
	out := []string{self, "sandbox-exec", "--rw", workdir}
	for _, p := range readOnly {
		out = append(out, "--ro", p)
	}
	return append(append(out, "--"), argv...)
}

// Main is the launcher: it parses Command's arguments, restricts this
// process and execs the command (resolved on this process's PATH, the
// cluster's). It returns only on error.
func Main(args []string) error {
	fs := flag.NewFlagSet("sandbox-exec", flag.ContinueOnError)
	var rw, ro paths
	fs.Var(&rw, "rw", "writable directory (repeatable)")
	fs.Var(&ro, "ro", "read-only directory (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 || len(rw) == 0 {
		return errors.New("usage: sandbox-exec --rw DIR [--ro DIR ...] -- COMMAND [ARG ...]")
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	// Landlock binds threads: restrict, fork the command and signal it all
	// from this one.
	runtime.LockOSThread()
	init := os.Getpid() == 1 // started with SysProcAttr: a pid namespace of its own
	if init {
		if err := mountProc(); err != nil {
			return err
		}
	}
	if err := Restrict(rw, ro); err != nil {
		return err
	}
	if !init {
		return syscall.Exec(bin, argv, os.Environ())
	}
	return runAsInit(bin, argv)
}

// SysProcAttr starts the launcher in a new session and in namespaces of
// its own: a user namespace (so no root is needed), a pid namespace (the
// cluster sees only its own processes: /proc/<pid>/environ of another
// tenant's process does not exist for it) and a mount namespace (for the
// /proc of that pid namespace).
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setsid:                     true,
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}},
		GidMappingsEnableSetgroups: false,
	}
}

// mountProc gives the new pid namespace its own /proc, in a mount
// namespace whose changes do not propagate back.
func mountProc() error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc for the cluster's pid namespace: %w", err)
	}
	return nil
}

// runAsInit runs the command as the only child of this process, pid 1
// of the cluster's namespace: signals the gateway sends are passed on,
// orphans are reaped, and the command's exit is this process's exit.
func runAsInit(bin string, argv []string) error {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2)
	cmd := &exec.Cmd{Path: bin, Args: argv, Env: os.Environ(), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if err := cmd.Start(); err != nil {
		return err
	}
	child := cmd.Process.Pid
	exited := make(chan syscall.WaitStatus, 1)
	go reap(child, exited)
	for {
		select {
		case s := <-sigs: // sent from this locked thread, the one that forked the child
			_ = syscall.Kill(child, s.(syscall.Signal))
		case ws := <-exited:
			if ws.Signaled() {
				os.Exit(128 + int(ws.Signal()))
			}
			os.Exit(ws.ExitStatus())
		}
	}
}

// reap waits for every process in the namespace (orphans end up here)
// and reports the child's exit.
func reap(child int, exited chan<- syscall.WaitStatus) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid == child {
			exited <- ws
			return
		}
	}
}

// Restrict confines this process (and what it later starts) to reading
// ro and rw, writing rw, and /dev/null; with ABI 6 also its signals and
// abstract sockets to its own sandbox.
func Restrict(rw, ro []string) error {
	abi, err := Check()
	if err != nil {
		return err
	}
	var roDirs, roFiles []string
	for _, p := range ro {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			roFiles = append(roFiles, p)
		} else {
			roDirs = append(roDirs, p)
		}
	}
	rules := []landlock.Rule{
		landlock.RODirs(roDirs...).IgnoreIfMissing(),
		landlock.ROFiles(roFiles...).IgnoreIfMissing(),
		landlock.RWDirs(rw...),
		// multiprocessing's semaphores (the nanny) live in /dev/shm.
		landlock.RWDirs("/dev/shm").IgnoreIfMissing(),
		landlock.RWFiles("/dev/null", "/dev/zero", "/dev/full", "/dev/tty").IgnoreIfMissing(),
		landlock.ROFiles("/dev/urandom", "/dev/random").IgnoreIfMissing(),
	}
	// One ruleset, so one domain: two would nest, and the threads of this
	// process could end up in different ones.
	if abi >= scopedABI {
		cfg := landlock.V6
		cfg.HandledAccessNet = 0 // dask needs the network; the fs and scoping only
		err = cfg.Restrict(rules...)
	} else {
		err = landlock.V3.RestrictPaths(rules...)
	}
	if err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	return nil
}

type paths []string

func (p *paths) String() string     { return strings.Join(*p, ",") }
func (p *paths) Set(v string) error { *p = append(*p, v); return nil }
