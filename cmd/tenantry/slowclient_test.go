package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantry/tenantry/migrations/migrationstest"
)

// 200 connections sending their headers one byte a second (slowloris) do not stop the real
// program from serving a normal client within a second: each connection costs the server a
// goroutine, not one of a few workers; one that stops sending is hung up on after the 10 s the
// server gives a client for its headers. Bounded: the slow clients send for 3 seconds, then
// hang up; the stalled one waits at most 15.
func TestSlowClientsDoNotStopOthers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{"TENANTRY_DATABASE": migrationstest.DSN(t), "TENANTRY_BOOTSTRAP_KEY_FILE": filepath.Join(dir, "bootstrap")}
	m, _ := start(t, env)
	t.Cleanup(func() { m.Close() })
	raw, err := os.ReadFile(env["TENANTRY_BOOTSTRAP_KEY_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(raw))

	const slow = 200
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range slow {
		conn, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatalf("slow client: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			request := "GET /api/me HTTP/1.1\r\nHost: tenantry\r\n"
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for i := 0; i < 3; i++ {
				if _, err := conn.Write([]byte{request[i]}); err != nil {
					return
				}
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })

	// One more stops halfway through its headers: the server hangs up on it after 10 s.
	stalled, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalledAt := time.Now()
	if _, err := stalled.Write([]byte("GET /api/me HTTP/1.1\r\nHost: tenantry\r\n")); err != nil {
		t.Fatal(err)
	}
	hungUp := make(chan time.Duration, 1)
	go func() {
		stalled.SetReadDeadline(time.Now().Add(15 * time.Second))
		io.Copy(io.Discard, stalled) // until the server closes it, or the deadline
		hungUp <- time.Since(stalledAt)
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	for i := range 5 {
		time.Sleep(300 * time.Millisecond)
		req, _ := http.NewRequest("GET", "http://"+m.Addr()+"/api/me", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		began := time.Now()
		resp, err := client.Do(req)
		took := time.Since(began)
		if err != nil {
			t.Fatalf("request %d beside %d slow clients: %v", i, slow, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || took > time.Second {
			t.Fatalf("request %d beside %d slow clients: %d in %v, want 200 within 1 s", i, slow, resp.StatusCode, took)
		}
		t.Logf("request %d beside %d slow clients: %v", i, slow, took.Round(time.Millisecond))
	}
	if took := <-hungUp; took < 9*time.Second || took > 13*time.Second {
		t.Fatalf("a client that stopped halfway through its headers was hung up on after %v, want about 10 s (ReadHeaderTimeout)", took)
	}
}
