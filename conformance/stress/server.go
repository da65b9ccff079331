package stress

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildBinary builds cmd/odxtgt statically (CGO_ENABLED=0) into dir and
// returns the path of the binary. It must run inside the odxtgt module.
func BuildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "odxtgt")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/odxtgt/odxtgt/cmd/odxtgt")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Server is a running odxtgt process.
type Server struct {
	// Addr is the first portal the target listens on.
	Addr string

	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer // the process's stderr (JSON log lines)
	done chan error
}

// StartServer writes yaml to dir/odxtgt.yaml, runs bin serve on it and
// waits until the target logs the address it listens on (portals may use
// port 0).
func StartServer(bin, dir, yaml string) (*Server, error) {
	cfg := filepath.Join(dir, "odxtgt.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	s := &Server{done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "serve", "--config", cfg, "--log-format", "json", "--log-level", "info")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			s.mu.Lock()
			s.log.Write(line)
			s.log.WriteByte('\n')
			s.mu.Unlock()
			var rec struct{ Msg, Portal string }
			if !sent && json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.Portal != "" {
				addr <- rec.Portal
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		s.done <- s.cmd.Wait()
	}()
	select {
	case a := <-addr:
		s.Addr = a
		return s, nil
	case err := <-s.done:
		return nil, fmt.Errorf("odxtgt exited before listening (%v):\n%s", err, s.Log())
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		return nil, fmt.Errorf("odxtgt did not report a listening portal:\n%s", s.Log())
	}
}

// Log returns what the process has logged so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Stop sends SIGTERM and waits for a clean exit; it kills the process if it
// has not exited within 30 seconds.
func (s *Server) Stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			return fmt.Errorf("odxtgt serve: %v", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("odxtgt did not stop within 30 s")
	}
}

// Kill ends the process with SIGKILL, as a crash would, and waits until
// it has exited (and so released its files' locks).
func (s *Server) Kill() error {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-s.done:
		s.done <- err
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("odxtgt did not exit within 30 s of SIGKILL")
	}
}

// PID is the process id of the target.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Warnings returns the log lines of level WARN or ERROR.
func (s *Server) Warnings() []string {
	var out []string
	for _, l := range strings.Split(s.Log(), "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return out
}

// OpenFiles counts the file descriptors the process holds
// (/proc/PID/fd).
func (s *Server) OpenFiles() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.PID()))
	return len(ents), err
}

// Usage reads the thread count and the resident set size (bytes) of the
// process from /proc/PID/status.
func (s *Server) Usage() (threads int, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.PID()))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "Threads:":
			threads, _ = strconv.Atoi(f[1])
		case len(f) >= 3 && f[0] == "VmRSS:" && f[2] == "kB":
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			rss = kb << 10
		}
	}
	return threads, rss, nil
}
