package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Every process Start launches is recorded in DIR/pids/NAME.pid as
// "PID STARTTIME" (the start time from /proc/PID/stat), so that Stop,
// even from another process (`testenv stop DIR`), signals exactly the
// processes it started and never a recycled PID. Output goes to
// DIR/logs/NAME.log.

// launch starts bin with args as name, logging to DIR/logs/name.log. A
// process not detached is killed by the kernel when this one dies (a
// test binary that times out or is interrupted leaves nothing behind).
func launch(dir, name string, detach bool, bin string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if !detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	go cmd.Wait() // reap it when it exits, so alive() sees it gone
	st, err := startTime(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		return err
	}
	rec := fmt.Sprintf("%d %s\n", cmd.Process.Pid, st)
	return os.WriteFile(filepath.Join(dir, "pids", name+".pid"), []byte(rec), 0o644)
}

// startTime is field 22 of /proc/PID/stat: when the process started, in
// clock ticks since boot.
func startTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name (field 2) may hold spaces; fields restart after ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return "", fmt.Errorf("process %d has exited", pid)
	}
	return f[19], nil
}

// recorded returns the PID recorded for name under dir, if that process
// still runs (same PID and start time).
func recorded(dir, name string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "pids", name+".pid"))
	if err != nil {
		return 0, false
	}
	var pid int
	var st string
	if _, err := fmt.Sscan(string(b), &pid, &st); err != nil {
		return 0, false
	}
	now, err := startTime(pid)
	return pid, err == nil && now == st
}

// processNames is the start order; Stop goes backwards, etcd last.
var processNames = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// StopDir stops the control plane recorded under dir: SIGTERM to all but
// etcd, then etcd (so the API server shuts down cleanly), each group
// given 15 s before SIGKILL. Logs stay in dir/logs.
func StopDir(dir string) error {
	var errs []error
	n := len(processNames)
	for _, group := range [][]string{processNames[1:n], processNames[:1]} {
		errs = append(errs, stopGroup(dir, group))
	}
	return errors.Join(errs...)
}

func stopGroup(dir string, names []string) error {
	var running []string
	for _, name := range names {
		if pid, ok := recorded(dir, name); ok {
			syscall.Kill(pid, syscall.SIGTERM)
			running = append(running, name)
		} else {
			os.Remove(filepath.Join(dir, "pids", name+".pid"))
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	var errs []error
	for _, name := range running {
		for {
			pid, ok := recorded(dir, name)
			if !ok {
				break
			}
			if time.Now().After(deadline) {
				syscall.Kill(pid, syscall.SIGKILL)
				errs = append(errs, fmt.Errorf("%s (pid %d) ignored SIGTERM for 15 s: killed", name, pid))
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		os.Remove(filepath.Join(dir, "pids", name+".pid"))
	}
	return errors.Join(errs...)
}

// logTail returns the last lines of name's log, for error messages.
func logTail(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "logs", name+".log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}
