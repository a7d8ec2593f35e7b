package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// procSpec is one process to launch.
type procSpec struct {
	argv    []string
	env     []string
	dir     string
	logFile string
	// attr, if set, replaces the default new session (namespaces too).
	attr *syscall.SysProcAttr
	// owner, if set, gets the log file (uid, gid).
	owner *[2]int
	// onExit runs once when a child launched by this gateway exits.
	onExit func(pid int, err error)
}

// procs launches, watches and stops cluster processes. Children of this
// gateway are reaped by a goroutine per child, so an exit is known at once;
// processes adopted after a restart are checked with kill(pid, 0) plus
// their environment, so a recycled pid is not mistaken for them.
type procs struct {
	mu       sync.Mutex
	children map[int]chan struct{} // closed when the child has exited
}

func newProcs() *procs { return &procs{children: map[int]chan struct{}{}} }

// start launches p in a new session with exactly p.env, output appended to
// its log file (appended, so a retried launch keeps the earlier output).
func (ps *procs) start(p procSpec) (int, error) {
	// The log lives in the work dir, which a tenant may own: opened
	// without following links (openBeneath).
	log, err := openBeneath(filepath.Dir(filepath.Dir(p.logFile)), filepath.Join("logs", filepath.Base(p.logFile)),
		os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("create log file: %w", err)
	}
	defer log.Close()
	if p.owner != nil {
		if err := log.Chown(p.owner[0], p.owner[1]); err != nil {
			return 0, fmt.Errorf("log file: %w", err)
		}
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env, cmd.Dir = p.env, p.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if p.attr != nil {
		cmd.SysProcAttr = p.attr
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", p.argv[0], err)
	}
	done := make(chan struct{})
	ps.mu.Lock()
	ps.children[cmd.Process.Pid] = done
	ps.mu.Unlock()
	go ps.reap(cmd, done, p.onExit)
	return cmd.Process.Pid, nil
}

func (ps *procs) reap(cmd *exec.Cmd, done chan struct{}, onExit func(int, error)) {
	err := cmd.Wait()
	close(done)
	ps.mu.Lock()
	delete(ps.children, cmd.Process.Pid)
	ps.mu.Unlock()
	if onExit != nil {
		onExit(cmd.Process.Pid, err)
	}
}

// alive reports whether pid still runs and belongs to cluster name.
func (ps *procs) alive(pid int, name string) bool {
	if pid <= 0 {
		return false
	}
	ps.mu.Lock()
	done, child := ps.children[pid]
	ps.mu.Unlock()
	if child {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return true // cannot tell; kill(pid, 0) said yes
	}
	return bytes.Contains(env, []byte("\x00DASK_GATEWAY_CLUSTER_NAME="+name+"\x00")) ||
		bytes.HasPrefix(env, []byte("DASK_GATEWAY_CLUSTER_NAME="+name+"\x00"))
}

// stopTimeouts are how long to wait after SIGINT, SIGTERM and SIGKILL.
type stopTimeouts [3]time.Duration

var errStillRunning = errors.New("process still running after SIGKILL")

// stop escalates SIGINT, SIGTERM, SIGKILL to pid, waiting for each with
// polls that start at 100 ms and double, then kills what is left of its
// process group (pid leads its own session): anything the cluster's code
// started goes with it.
func (ps *procs) stop(ctx context.Context, pid int, name string, t stopTimeouts) error {
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		if !ps.alive(pid, name) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return nil
		}
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal %d: %w", pid, err)
		}
		if ps.wait(ctx, pid, name, t[i]) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return nil
		}
	}
	return errStillRunning
}

func (ps *procs) wait(ctx context.Context, pid int, name string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for d := 100 * time.Millisecond; ; d = min(2*d, time.Second) {
		if !ps.alive(pid, name) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return !ps.alive(pid, name)
		case <-time.After(min(d, time.Until(deadline)+time.Millisecond)):
		}
	}
}
