package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// binary builds the real tenantry program once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir, err := os.MkdirTemp("", "tenantry-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "tenantry")
		out, err := exec.Command("go", "build", "-race", "-o", binaryPath, filepath.Dir(file)).CombinedOutput()
		if err != nil {
			binaryErr = err
			binaryPath = string(out)
		}
	})
	if binaryErr != nil {
		t.Fatalf("build tenantry: %v\n%s", binaryErr, binaryPath)
	}
	return binaryPath
}

// process is the real program running as a child process.
type process struct {
	cmd    *exec.Cmd
	Addr   string
	logs   *strings.Builder
	stdout *strings.Builder
	mu     *sync.Mutex
}

// startProcess runs `tenantry serve` on a free port with the given environment (added to
// this process's) and waits until it listens.
func startProcess(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	return startProcessIn(t, "", env, args...)
}

// startProcessIn is startProcess with dir as the working directory ("": this process's).
func startProcessIn(t *testing.T, dir string, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TENANTRY_RATE_LIMIT=-1", "TENANTRY_AUTH_FAILURE_LIMIT=-1") // load tests: no limits
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &strings.Builder{}, stdout: &strings.Builder{}, mu: &sync.Mutex{}}
	cmd.Stdout = lockedWriter{p.stdout, p.mu}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Serve writes nothing on stdout (it logs on stderr): in particular, Gin runs in release
	// mode, without its debug listing of routes.
	t.Cleanup(func() {
		p.Kill()
		if out := p.Stdout(); out != "" {
			t.Errorf("serve wrote on stdout:\n%s", out)
		}
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case p.Addr = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatalf("tenantry did not start:\n%s", p.Logs())
	}
	return p
}

// Logs returns what the process has logged so far.
func (p *process) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Stdout returns what the process has written on its standard output so far.
func (p *process) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Kill stops the process at once (SIGKILL), as a crash would.
func (p *process) Kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}
