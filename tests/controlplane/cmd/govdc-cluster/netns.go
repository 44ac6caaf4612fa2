package main

// Network namespaces: a cluster with nodes runs in namespaces of its own (see nodes.go). The
// launcher reaches into them by dialing from a thread switched into the namespace, and runs
// commands in them with nsenter (not `ip netns exec`, which remounts /sys and hides the cgroups).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// netnsPath is where `ip netns add` pins a named namespace.
func netnsPath(name string) string { return "/run/netns/" + name }

// dialInNetns connects to addr from inside the network namespace pinned at nsPath. The socket is
// made on an OS thread switched into the namespace; that thread is never handed back to the Go
// scheduler (the goroutine ends locked), so no other goroutine runs in the wrong namespace.
func dialInNetns(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		ns, err := os.Open(nsPath)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer ns.Close()
		if _, _, errno := syscall.RawSyscall(sysSetns, ns.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
			done <- result{nil, fmt.Errorf("setns %s: %w", nsPath, errno)}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, addr)
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

// netnsDialer returns a DialContext for http.Transport that dials inside nsPath.
func netnsDialer(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialInNetns(ctx, nsPath, network, addr)
	}
}

// runCmd runs a short command and returns an error carrying its output.
func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// inNetns runs a short command inside the named network namespace.
func inNetns(ns string, args ...string) error {
	return runCmd("nsenter", append([]string{"--net=" + netnsPath(ns), "--"}, args...)...)
}

// netnsInode returns the inode of the namespace pinned at path (what /proc/PID/ns/net names).
func netnsInode(path string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, false
	}
	return st.Ino, true
}

// pidsInNetns lists the processes whose network namespace has one of the given inodes.
func pidsInNetns(inodes map[uint64]bool) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue
		}
		var ino uint64
		if _, err := fmt.Sscanf(link, "net:[%d]", &ino); err == nil && inodes[ino] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// forward serves listener by copying every connection to addr inside the network namespace at
// nsPath. It returns when the listener fails or is closed (when the process is told to stop),
// without waiting for open connections: clients' keep-alive connections would hold it for good.
func forward(listener net.Listener, nsPath, addr string) error {
	for {
		client, err := listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer client.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			server, err := dialInNetns(ctx, nsPath, "tcp", addr)
			cancel()
			if err != nil {
				fmt.Fprintf(os.Stderr, "govdc-cluster forward: %v\n", err)
				return
			}
			defer server.Close()
			copyBoth(client, server)
		}()
	}
}

// copyBoth copies a to b and b to a until both directions end.
func copyBoth(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
}
