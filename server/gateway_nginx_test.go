//go:build unix

package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server"
)

// The README's nginx configuration, run by a real nginx (Debian's package; .ci/run installs
// it) between a client and a small service, in front of a real Tenantry server: the README
// block itself, with only its three addresses changed.

// nginxBinary is the nginx to run: on PATH, or where Debian puts it (/usr/sbin, which is not
// on a user's PATH). Without one the test is skipped, except in CI, where it fails.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("nginx"); err == nil {
		return path
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") != "" {
		t.Fatal("nginx is not installed: .ci/run must install it (Debian package nginx)")
	}
	t.Skip("nginx is not installed (apt-get install nginx)")
	return ""
}

// The addresses of the README's configuration, which the tests replace.
const (
	readmeTenantry = "server 127.0.0.1:8080;"
	readmeService  = "server 127.0.0.1:9000;"
	readmeListen   = "listen 127.0.0.1:8000;"
)

// readmeNginx is the README's one ```nginx block, with Tenantry at tenantry, the service at
// service and nginx listening at listen (host:port each).
func readmeNginx(t *testing.T, tenantry, service, listen string) string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(string(raw), "\n```nginx\n")
	if len(parts) != 2 {
		t.Fatalf("README: want one ```nginx block, found %d", len(parts)-1)
	}
	block, _, ok := strings.Cut(parts[1], "\n```\n")
	if !ok {
		t.Fatal("README: the ```nginx block does not end")
	}
	for _, r := range []struct{ old, new string }{
		{readmeTenantry, "server " + tenantry + ";"}, {readmeService, "server " + service + ";"}, {readmeListen, "listen " + listen + ";"},
	} {
		if n := strings.Count(block, r.old); n != 1 {
			t.Fatalf("README's nginx block: %q appears %d times, want once", r.old, n)
		}
		block = strings.Replace(block, r.old, r.new, 1)
	}
	return block
}

// nginx is a running nginx: its address and what it logged.
type nginx struct {
	url  string
	mu   sync.Mutex
	logs bytes.Buffer
}

func (n *nginx) Write(p []byte) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.Write(p)
}
func (n *nginx) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.String()
}

// startNginx runs nginx as the test's user with the http-block configuration conf(listen),
// everything it writes in a temporary directory, on a free port of 127.0.0.1, until the test
// ends. Warnings in its log fail the test (a misspelt variable is one).
func startNginx(t *testing.T, conf func(listen string) string) *nginx {
	t.Helper()
	bin := nginxBinary(t)
	dir := t.TempDir()
	for attempt := 1; ; attempt++ {
		listen := freeAddr(t)
		user := ""
		if os.Geteuid() == 0 {
			user = "user root;\n" // else nginx's workers would run as nobody
		}
		main := user + "worker_processes 1;\nevents { worker_connections 64; }\nhttp {\n    access_log off;\n" +
			"    client_body_temp_path " + dir + "/client_body;\n    proxy_temp_path " + dir + "/proxy;\n" +
			"    fastcgi_temp_path " + dir + "/fastcgi;\n    uwsgi_temp_path " + dir + "/uwsgi;\n    scgi_temp_path " + dir + "/scgi;\n\n" +
			conf(listen) + "\n}\n"
		path := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(path, []byte(main), 0o600); err != nil {
			t.Fatal(err)
		}
		n := &nginx{url: "http://" + listen}
		cmd := exec.Command(bin, "-p", dir, "-c", path, "-e", "stderr",
			"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr warn;")
		cmd.Stdout, cmd.Stderr = n, n
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its workers, stopped with it
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-exited
			}
		}
		if err := waitListening(listen, exited); err != nil {
			stop()
			if strings.Contains(n.log(), "Address already in use") && attempt < 3 {
				continue // the free port was taken meanwhile
			}
			t.Fatalf("nginx did not start: %v\n%s\nconfiguration:\n%s", err, n.log(), main)
		}
		t.Cleanup(func() {
			stop()
			for _, line := range strings.Split(n.log(), "\n") {
				for _, level := range []string{"[warn]", "[emerg]", "[alert]", "[crit]"} {
					if strings.Contains(line, level) {
						t.Errorf("nginx logged: %s", line)
					}
				}
			}
			if t.Failed() {
				t.Logf("nginx's log:\n%s", n.log())
			}
		})
		return n
	}
}

// waitListening waits up to 10 s for addr to accept connections, or for the process to exit.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("not listening after 10 s")
}

// freeAddr is a port of 127.0.0.1 nothing listens on (now).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func hostOf(url string) string { return strings.TrimPrefix(url, "http://") }

// service is the upstream nginx guards: it answers what it received, the X-Tenantry-* headers
// with every value sent, and counts its requests.
type service struct {
	url      string
	requests atomic.Int64
}

// seen is what the service received.
type seen struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Body    string              `json:"body"`
	Headers map[string][]string `json:"headers"`
}

func newService(t *testing.T) *service {
	t.Helper()
	svc := &service{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		svc.requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		s := seen{Method: r.Method, Path: r.URL.Path, Body: string(body), Headers: map[string][]string{}}
		for name, values := range r.Header {
			if strings.HasPrefix(name, "X-Tenantry-") {
				s.Headers[name] = values
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(ts.Close)
	svc.url = ts.URL
	return svc
}

// gatewayAnswer is nginx's answer to one request.
type gatewayAnswer struct {
	status int
	header http.Header
	seen   seen // what the service received, when nginx let the request through
}

// through sends a request to nginx with key as its bearer credential ("" for none) and
// headers as name, value pairs.
func (n *nginx) through(t *testing.T, method, path, key, body string, headers ...string) gatewayAnswer {
	t.Helper()
	req, err := http.NewRequest(method, n.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s through nginx: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := gatewayAnswer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &a.seen); err != nil {
			t.Fatalf("%s %s: 200, but not from the service: %v: %s", method, path, err, raw)
		}
	}
	return a
}

// wantSeen fails unless the service received exactly these principal headers, each once (""
// for one it must not have received).
func wantSeen(t *testing.T, a gatewayAnswer, org, user, key, kind, permissions string) {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("status %d, want 200 from the service", a.status)
	}
	want := map[string]string{"X-Tenantry-Organization-Id": org, "X-Tenantry-User-Id": user, "X-Tenantry-Key-Id": key,
		"X-Tenantry-Credential-Kind": kind, "X-Tenantry-Permissions": permissions}
	for name, v := range want {
		got := a.seen.Headers[name]
		switch {
		case v == "" && len(got) != 0:
			t.Errorf("the service received %s: %q, want none", name, got)
		case v != "" && (len(got) != 1 || got[0] != v):
			t.Errorf("the service received %s: %q, want %q", name, got, v)
		}
	}
}

// refused fails unless nginx answered status without reaching the service.
func (svc *service) refused(t *testing.T, a gatewayAnswer, before int64, status int) {
	t.Helper()
	if a.status != status {
		t.Errorf("status %d, want %d", a.status, status)
	}
	if n := svc.requests.Load(); n != before {
		t.Errorf("the service was reached (%d requests, %d before)", n, before)
	}
}

// The README's nginx configuration lets a valid credential through with its principal, as the
// credential is narrowed, and stops a missing, invalid, revoked or under-permissioned one
// before the service; a client cannot pass headers of its own for the principal or the
// requirements.
func TestNginxGateway(t *testing.T) {
	t.Parallel()
	nginxBinary(t)
	e := newEnvWith(t, func(c *server.Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	svc := newService(t)
	ng := startNginx(t, func(listen string) string { return readmeNginx(t, hostOf(e.url), hostOf(svc.url), listen) })
	o := e.newOrg("Edge")
	adminKeyID := o.admin.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	memberKeyID := o.member.Do("GET", "/api/me", nil).Data()["key_id"].(string)
	key := func(body map[string]any) (id, value string) {
		r := o.admin.Do("POST", "/api/keys", body)
		expect(t, r, 200, "")
		return r.Data()["id"].(string), r.Data()["value"].(string)
	}
	readerID, reader := key(map[string]any{"name": "reader", "user_id": o.memberID, "scopes": []string{"datasets:read"}})
	askerID, asker := key(map[string]any{"name": "widget", "kind": "organization", "role": "asker"})
	token := o.member.Do("POST", "/api/auth/tokens", nil).Data()["token"].(string)
	const allActions = "users:read users:write keys:read keys:write roles:read roles:write policies:read policies:write " +
		"connections:read connections:write datasets:read datasets:write events:read webhooks:read webhooks:write"
	const memberActions = "users:read keys:read roles:read policies:read connections:read connections:write datasets:read datasets:write " +
		"events:read webhooks:read"
	// What a client might send to pass for someone else.
	spoof := []string{"X-Tenantry-Organization-Id", "someone-else", "X-Tenantry-User-Id", "someone-else",
		"X-Tenantry-Permissions", allActions, "X-Tenantry-Credential-Kind", "partner"}

	t.Run("a user key passes with its principal, not the client's", func(t *testing.T) {
		wantSeen(t, ng.through(t, "GET", "/orders/7", o.admin.Key, "", spoof...), o.id, o.adminID, adminKeyID, "user", allActions)
	})
	t.Run("a key's scopes narrow the permissions", func(t *testing.T) {
		a := ng.through(t, "GET", "/reports/monthly", reader, "", spoof...)
		wantSeen(t, a, o.id, o.memberID, readerID, "user", "datasets:read")
		if a.seen.Path != "/reports/monthly" {
			t.Errorf("the service got %q", a.seen.Path)
		}
	})
	t.Run("an organization key has no user, whatever the client says", func(t *testing.T) {
		wantSeen(t, ng.through(t, "GET", "/reports/x", asker, "", spoof...), o.id, "", askerID, "organization", "connections:read datasets:read")
	})
	t.Run("a token passes as its key's user", func(t *testing.T) {
		wantSeen(t, ng.through(t, "GET", "/reports/x", token, ""), o.id, o.memberID, memberKeyID, "token", memberActions)
	})
	t.Run("a location's permissions, all of them", func(t *testing.T) {
		wantSeen(t, ng.through(t, "GET", "/admin/users", o.admin.Key, ""), o.id, o.adminID, adminKeyID, "user", allActions)
		before := svc.requests.Load()
		svc.refused(t, ng.through(t, "GET", "/admin/users", reader, ""), before, 403)
		svc.refused(t, ng.through(t, "GET", "/admin/users", asker, ""), before, 403)
		svc.refused(t, ng.through(t, "GET", "/admin/users", o.member.Key, ""), before, 403) // users:read, not users:write
	})
	t.Run("the client cannot change what the check requires", func(t *testing.T) {
		// A requirement the reader lacks, a version Tenantry refuses, a query of its own: the
		// check is the location's.
		a := ng.through(t, "GET", "/reports/x?require=users:write", reader, "", "X-Tenantry-Require", "users:write",
			"X-Polytomic-Version", "1999-01-01")
		wantSeen(t, a, o.id, o.memberID, readerID, "user", "datasets:read")
	})
	t.Run("a write is checked without its body, which reaches the service whole", func(t *testing.T) {
		a := ng.through(t, "POST", "/reports/upload", reader, `{"rows": 3}`, "Content-Type", "application/json")
		wantSeen(t, a, o.id, o.memberID, readerID, "user", "datasets:read")
		if a.seen.Method != "POST" || a.seen.Body != `{"rows": 3}` {
			t.Errorf("the service got %s %q", a.seen.Method, a.seen.Body)
		}
	})
	t.Run("no credential, or an invalid one, is 401 with the challenge", func(t *testing.T) {
		before := svc.requests.Load()
		a := ng.through(t, "GET", "/orders/7", "", "")
		svc.refused(t, a, before, 401)
		if got := a.header.Get("WWW-Authenticate"); got != `Bearer realm="tenantry"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
		flipped := []byte(o.admin.Key)
		flipped[10] = map[bool]byte{true: 'b', false: 'a'}[flipped[10] == 'a']
		for _, bad := range []string{"tuk_not-a-key", string(flipped)} {
			a := ng.through(t, "GET", "/orders/7", bad, "")
			svc.refused(t, a, before, 401)
			if got := a.header.Get("WWW-Authenticate"); got != `Bearer realm="tenantry", error="invalid_token"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
		}
	})
	t.Run("a revoked key is refused on its next request", func(t *testing.T) {
		id, temp := key(map[string]any{"name": "temp", "user_id": o.memberID})
		wantSeen(t, ng.through(t, "GET", "/orders/7", temp, ""), o.id, o.memberID, id, "user", memberActions)
		expect(t, o.admin.Do("DELETE", "/api/keys/"+id, nil), 200, "")
		before := svc.requests.Load()
		svc.refused(t, ng.through(t, "GET", "/orders/7", temp, ""), before, 401)
	})
	t.Run("allowed networks apply to the client nginx names, not to one a client makes up", func(t *testing.T) {
		_, fenced := key(map[string]any{"name": "fenced", "user_id": o.memberID, "allowed_cidrs": []string{"10.0.0.0/8"}})
		before := svc.requests.Load()
		svc.refused(t, ng.through(t, "GET", "/orders/7", fenced, "", "X-Forwarded-For", "10.0.0.1"), before, 403)
		homeID, home := key(map[string]any{"name": "home", "user_id": o.memberID, "allowed_cidrs": []string{"127.0.0.1"}})
		wantSeen(t, ng.through(t, "GET", "/orders/7", home, ""), o.id, o.memberID, homeID, "user", memberActions)
		// The organization's policy, changed, is met on the next request.
		expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id+"/key_policy", map[string]any{"allowed_cidrs": []string{"10.0.0.0/8"}}), 200, "")
		before = svc.requests.Load()
		svc.refused(t, ng.through(t, "GET", "/orders/7", home, ""), before, 403)
		expect(t, e.partner.Do("PUT", "/api/organizations/"+o.id+"/key_policy", map[string]any{}), 200, "")
		wantSeen(t, ng.through(t, "GET", "/orders/7", home, ""), o.id, o.memberID, homeID, "user", memberActions)
	})
	t.Run("a partner key does not pass", func(t *testing.T) {
		before := svc.requests.Load()
		svc.refused(t, ng.through(t, "GET", "/orders/7", e.partner.Key, ""), before, 403)
	})
	t.Run("the check's location is not reachable from outside", func(t *testing.T) {
		before := svc.requests.Load()
		svc.refused(t, ng.through(t, "GET", "/_tenantry/check/", o.admin.Key, ""), before, 404)
	})
}

// Limits through the README's nginx: each request through it counts against its credential's
// rate limit (429 with Tenantry's Retry-After, and the same bucket as a call to Tenantry), and
// failed authentications are counted by the client's address as nginx sends it, whatever
// X-Forwarded-For the client makes up.
func TestNginxGatewayLimits(t *testing.T) {
	t.Parallel()
	nginxBinary(t)
	e := newEnvWith(t, func(c *server.Config) {
		c.TrustedProxies = []string{"127.0.0.1"}
		c.RatePerSecond, c.RateBurst = 0.001, 10
		c.AuthFailuresPerSecond, c.AuthFailureBurst = 0.001, 3
	})
	svc := newService(t)
	ng := startNginx(t, func(listen string) string { return readmeNginx(t, hostOf(e.url), hostOf(svc.url), listen) })
	o := e.newOrg("Limit") // the partner key's bucket, not the member's

	for i := range 10 {
		if a := ng.through(t, "GET", "/orders/7", o.member.Key, ""); a.status != 200 {
			t.Fatalf("request %d: %d", i+1, a.status)
		}
	}
	before := svc.requests.Load()
	a := ng.through(t, "GET", "/orders/7", o.member.Key, "")
	svc.refused(t, a, before, 429)
	if got := a.header.Get("Retry-After"); got != "1000" { // one request per 1000 s
		t.Errorf("Retry-After %q, want Tenantry's 1000", got)
	}
	expect(t, o.member.Do("GET", "/api/me", nil), 429, "rate_limited")

	for i := range 3 {
		svc.refused(t, ng.through(t, "GET", "/orders/7", "tuk_not-a-key", "", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i)), before, 401)
	}
	a = ng.through(t, "GET", "/orders/7", "tuk_not-a-key", "", "X-Forwarded-For", "203.0.113.99")
	svc.refused(t, a, before, 429)
	if got := a.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want Tenantry's 1", got)
	}
}

// When the check cannot answer yes or no, nginx lets nothing through: a location that
// requires an action Tenantry does not know is 500 (once the credential is good), and
// Tenantry unreachable is 503.
func TestNginxGatewayFailures(t *testing.T) {
	t.Parallel()
	nginxBinary(t)
	e := newEnvWith(t, func(c *server.Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	svc := newService(t)
	o := e.newOrg("Fail")
	typo := "    location /typo/ {\n        auth_request /_tenantry/check/datasets:reed;\n        proxy_pass http://service;\n    }\n"
	ng := startNginx(t, func(listen string) string {
		conf := readmeNginx(t, hostOf(e.url), hostOf(svc.url), listen)
		if !strings.Contains(conf, "    location / {\n") {
			t.Fatal("README's nginx block: no `location / {` to add a location before")
		}
		return strings.Replace(conf, "    location / {\n", typo+"    location / {\n", 1)
	})
	svc.refused(t, ng.through(t, "GET", "/typo/x", o.admin.Key, ""), 0, 500)
	svc.refused(t, ng.through(t, "GET", "/typo/x", "", ""), 0, 401)

	down := startNginx(t, func(listen string) string { return readmeNginx(t, freeAddr(t), hostOf(svc.url), listen) })
	svc.refused(t, down.through(t, "GET", "/orders/7", o.admin.Key, ""), 0, 503)
}
