package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a control-plane component started by `up`, detached from the launcher.
type process struct {
	Pid    int
	exited chan struct{} // closed when the process ends while the launcher still runs
	err    error         // exit status, valid once exited is closed
}

// startDetached runs `kube <component> args...` in its own session with stdout and stderr
// appended to logFile, and writes its pid to pidFile. The process outlives the launcher.
func startDetached(kubeBin, component string, args []string, dir, logFile, pidFile string) (*process, error) {
	return startDetachedIn("", kubeBin, append([]string{component}, args...), dir, logFile, pidFile, nil)
}

// startDetachedIn runs `bin args...` as startDetached does, inside the named network namespace
// (through nsenter, which execs bin: the pid and command line are bin's) unless netns is empty,
// with env (nil: the launcher's).
func startDetachedIn(netns, bin string, args []string, dir, logFile, pidFile string, env []string) (*process, error) {
	component := args[0]
	// Keep the previous run's log: a failed start is usually diagnosed from it.
	if fileExists(logFile) {
		_ = os.Rename(logFile, logFile+".prev")
	}
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	cmd := exec.Command(bin, args...)
	if netns != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=" + netnsPath(netns), "--", bin}, args...)...)
	}
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", component, err)
	}
	p := &process{Pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := writeFileAtomic(pidFile, []byte(strconv.Itoa(p.Pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return p, nil
}

// readPid returns the pid stored in pidFile, or 0 if there is none.
func readPid(pidFile string) int {
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// componentAlive reports whether pid is a live (not zombie) `kube <component>` process. The
// command-line check guards against a recycled pid after a reboot or a crash.
func componentAlive(pid int, component string) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // no /proc: trust kill(0)
	}
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	return len(args) > 1 && args[1] == component
}

// stopComponent sends SIGTERM to the component recorded in pidFile, waits up to grace for it to
// exit, then kills it. It removes the pid file. It reports whether a process was stopped.
func stopComponent(component, pidFile string, grace time.Duration) (bool, error) {
	pid := readPid(pidFile)
	defer os.Remove(pidFile)
	if !componentAlive(pid, component) {
		return false, nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, err
	}
	if waitGone(pid, component, grace) {
		return true, nil
	}
	fmt.Fprintf(os.Stderr, "govdc-cluster: %s (pid %d) ignored SIGTERM for %s, killing it\n", component, pid, grace)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, err
	}
	if !waitGone(pid, component, 5*time.Second) {
		return true, fmt.Errorf("%s (pid %d) survived SIGKILL", component, pid)
	}
	return true, nil
}

func waitGone(pid int, component string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for componentAlive(pid, component) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// lockFile takes an exclusive flock on path, blocking until it is free. Call the returned
// function to release it.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// tailFile returns the last n lines of path, for error messages.
func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
