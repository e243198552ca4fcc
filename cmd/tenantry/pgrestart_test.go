package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/server/servertest"
)

// ownPostgres is a PostgreSQL of the test's own: initdb'd in the test's temporary directory,
// listening on a free port of 127.0.0.1 (TCP only), stopped at once when the test ends, and
// killed with the test process if that ends first. A test may stop and start it; the
// machine's shared PostgreSQL is never touched.
type ownPostgres struct {
	t      *testing.T
	bin    string // the directory of initdb and postgres
	dir    string // holds data/ and postgres.log
	port   int
	as     *syscall.Credential // the postgres user's, when the test runs as root (PostgreSQL refuses root)
	server *exec.Cmd           // the postmaster, while it runs
	exited chan struct{}       // closed when it has exited
}

// postgresBinDir is the directory of PostgreSQL's server programs: Debian's newest
// /usr/lib/postgresql/N/bin, else where postgres on PATH leads. Without them the test is
// skipped, except in CI, where it fails.
func postgresBinDir(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir))); return n }
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	for _, dir := range dirs {
		found := true
		for _, prog := range []string{"initdb", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, prog)); err != nil {
				found = false
			}
		}
		if found {
			return dir
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("PostgreSQL's server programs (initdb, postgres) are not installed: .ci/run must install them (Debian package postgresql)")
	}
	t.Skip("PostgreSQL's server programs (initdb, postgres) are not installed (apt-get install postgresql)")
	return ""
}

// startOwnPostgres initdb's a PostgreSQL and starts it; it is stopped (immediate shutdown)
// when the test ends, whatever happened.
func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	pg := &ownPostgres{t: t, bin: postgresBinDir(t), dir: t.TempDir()}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL must run as another user, and there is no user postgres (the Debian package postgresql creates it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.as = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		// It must reach its directory (through the test's, mode 0700) and own it.
		if err := os.Chmod(filepath.Dir(pg.dir), 0o711); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(pg.dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pg.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := pg.run("initdb", "-D", pg.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		t.Fatal(err)
	}
	conf, err := os.OpenFile(filepath.Join(pg.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// No Unix socket (its path would depend on the temporary directory's length); fsync off:
	// the test measures the server's recovery, not the disk.
	fmt.Fprintf(conf, "\nport = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\nfsync = off\n", pg.port)
	if err := conf.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if pg.server != nil {
			pg.server.Process.Signal(syscall.SIGQUIT) // immediate shutdown
			<-pg.exited
		}
	})
	pg.Start()
	if _, err := pg.WaitAccepting(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	return pg
}

func (pg *ownPostgres) data() string { return filepath.Join(pg.dir, "data") }

// URL is the postgres:// URL of its database postgres.
func (pg *ownPostgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// run runs one of PostgreSQL's programs, as the postgres user when the test is root.
func (pg *ownPostgres) run(prog string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pg.bin, prog), args...)
	cmd.Dir = pg.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if pg.as != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.as}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return nil
}

// Start starts the server without waiting for it (WaitAccepting does): the postmaster itself,
// not through pg_ctl, so that it is the test process's child and dies with it (Pdeathsig), as
// when go test kills a test on its -timeout, which runs no cleanup.
func (pg *ownPostgres) Start() {
	pg.t.Helper()
	log, err := os.OpenFile(filepath.Join(pg.dir, "postgres.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		pg.t.Fatal(err)
	}
	defer log.Close() // the postmaster has its own
	cmd := exec.Command(filepath.Join(pg.bin, "postgres"), "-D", pg.data())
	cmd.Dir, cmd.Stdout, cmd.Stderr = pg.dir, log, log
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.as, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		pg.t.Fatalf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	pg.server, pg.exited = cmd, exited
}

// Stop stops the server as an operator restarting it would (fast shutdown, pg_ctl stop -m fast:
// sessions are ended, transactions in progress rolled back) and waits until it has stopped.
func (pg *ownPostgres) Stop() {
	pg.t.Helper()
	pg.server.Process.Signal(syscall.SIGINT)
	select {
	case <-pg.exited:
		pg.server = nil
	case <-time.After(time.Minute):
		pg.t.Fatal("PostgreSQL did not stop within a minute of its fast shutdown")
	}
}

// WaitAccepting connects every 10 ms until a connection succeeds, and returns when it did.
func (pg *ownPostgres) WaitAccepting(timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, pg.URL())
		if err == nil {
			at := time.Now()
			conn.Close(ctx)
			cancel()
			return at, nil
		}
		cancel()
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(pg.dir, "postgres.log"))
			return time.Time{}, fmt.Errorf("PostgreSQL does not accept connections after %s: %v\n%s", timeout, err, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventReceiver is a webhook endpoint that notes the webhook-id of every delivery it accepts.
type eventReceiver struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (rc *eventReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	rc.mu.Lock()
	rc.seen[r.Header.Get("webhook-id")] = true
	rc.mu.Unlock()
}

func (rc *eventReceiver) missing(ids []string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for _, id := range ids {
		if !rc.seen[id] {
			n++
		}
	}
	return n
}

// loadWrite is one create of the load: an organization or a role of the partner's owner
// organization (whose role.created events go to the webhook), under a name and an
// Idempotency-Key of its own.
type loadWrite struct {
	path, name, key string
}

func (w loadWrite) body() map[string]any {
	if w.path == "/api/organizations" {
		return map[string]any{"name": w.name}
	}
	return map[string]any{"name": w.name, "actions": []string{}}
}

// exchange is one request of the load and what came of it.
type exchange struct {
	write *loadWrite // nil for a read
	sent  time.Time
	took  time.Duration
	resp  *servertest.Response // nil when no answer came (err)
	err   error
}

// What a database error's text would show; a client must never see it.
var driverWords = []string{"pgconn", "pgx", "SQLSTATE", "FATAL", "dial tcp", "connection refused", "127.0.0.1", "terminating connection", "postgres"}

// PostgreSQL restarted under a steady mix of reads and writes (its own PostgreSQL, given a fast
// shutdown, as pg_ctl stop -m fast does, for 3 s): meanwhile every request is answered at once with 503
// database_unavailable and Retry-After (no hang, no 500, no driver text) and /readyz says 503;
// within 2 s of PostgreSQL accepting connections again the same server answers normally.
// Retrying each write that got no 2xx with its Idempotency-Key ends in exactly one object
// (a record the outage left in flight answers 409 idempotency_key_in_use until the server,
// the database back, releases it), no acknowledged write is lost, and the webhook outbox
// delivers every event, those of before the outage and one created after it. Bounded: four
// workers, 20 ms apart, for about 8 s; the whole test takes about 15 s.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	began := time.Now()
	pg := startOwnPostgres(t)
	rc := &eventReceiver{seen: map[string]bool{}}
	recv := httptest.NewServer(rc)
	t.Cleanup(recv.Close)
	dir := t.TempDir()
	env := map[string]string{
		"TENANTRY_DATABASE":              pg.URL(),
		"TENANTRY_BOOTSTRAP_KEY_FILE":    filepath.Join(dir, "bootstrap"),
		"TENANTRY_RATE_LIMIT":            "-1",
		"TENANTRY_WEBHOOK_ALLOW_PRIVATE": "true", // the receiver is on loopback
		"TENANTRY_WEBHOOK_POLL_INTERVAL": "100ms",
		"TENANTRY_WEBHOOK_TIMEOUT":       "1s", // lease 7 s: what was claimed as PostgreSQL went away is sent after it
		"TENANTRY_WEBHOOK_BASE_BACKOFF":  "100ms",
		"TENANTRY_WEBHOOK_MAX_BACKOFF":   "500ms",
	}
	m, logs := start(t, env)
	t.Cleanup(func() { m.Close() })
	raw, err := os.ReadFile(env["TENANTRY_BOOTSTRAP_KEY_FILE"])
	if err != nil {
		t.Fatal(err)
	}
	api := servertest.New(t, "http://"+m.Addr())
	api.HTTP = &http.Client{Timeout: 2 * time.Second} // an answer later than that is a hang
	partner := api.As(strings.TrimSpace(string(raw)))
	if r := partner.Do("POST", "/api/webhooks", map[string]any{"endpoint": recv.URL + "/hook", "event_types": []string{"role.created"}}); r.Status != 200 {
		t.Fatalf("create webhook: %d %s", r.Status, r.Body)
	}
	probe := partner.Do("POST", "/api/organizations", map[string]any{"name": "probe"})
	if probe.Status != 200 {
		t.Fatalf("create organization: %d %s", probe.Status, probe.Body)
	}
	probePath := "/api/organizations/" + probe.Data()["id"].(string)
	db, err := migrations.Open(pg.URL()) // the test's look at what the server stored
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	// The load: each worker creates an organization or a role, then reads the last one it
	// created, until stopped (at most 1000 rounds).
	const workers = 4
	stop := make(chan struct{})
	exchanges := make([][]exchange, workers)
	var wg sync.WaitGroup
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad) // also when the test fails half-way
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			send := func(write *loadWrite, method, path string, body any, headers ...string) *servertest.Response {
				sent := time.Now()
				r, err := partner.TryDo(method, path, body, headers...)
				exchanges[w] = append(exchanges[w], exchange{write: write, sent: sent, took: time.Since(sent), resp: r, err: err})
				return r
			}
			last := map[string]string{}
			for i := 0; i < 1000; i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				write := &loadWrite{path: "/api/organizations", name: fmt.Sprintf("org-%d-%d", w, i), key: fmt.Sprintf("restart-%d-%d", w, i)}
				if i%2 == 1 {
					write.path, write.name = "/api/permissions/roles", fmt.Sprintf("role-%d-%d", w, i)
				}
				if r := send(write, "POST", write.path, write.body(), "Idempotency-Key", write.key); r != nil && r.Status == 200 {
					last[write.path] = r.Data()["id"].(string)
				}
				if id := last[write.path]; id != "" {
					send(nil, "GET", write.path+"/"+id, nil)
				}
			}
		}()
	}

	// The restart: 1.5 s of load, PostgreSQL stopped for 3 s, then started again. For the
	// last 200 ms before the stop the test holds the table roles (every write adds a role), so
	// the writes then in flight have claimed their Idempotency-Key and wait inside their
	// transaction when PostgreSQL ends it: the records the outage leaves in flight.
	time.Sleep(1200 * time.Millisecond)
	hold, err := pgx.Connect(context.Background(), pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close(context.Background())
	if _, err := hold.Exec(context.Background(), `BEGIN; LOCK TABLE roles IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	pg.Stop()
	down := time.Now()
	time.Sleep(time.Second)
	if r, err := api.TryDo("GET", "/readyz", nil); err != nil || r.Status != 503 || r.ErrorKey() != "not_ready" {
		t.Errorf("/readyz with PostgreSQL stopped: %v %v", r, err)
	}
	time.Sleep(time.Until(down.Add(3 * time.Second)))
	restarting := time.Now()
	pg.Start()
	accepting, err := pg.WaitAccepting(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Recovery: from PostgreSQL accepting a connection to the sending of the first requests the
	// server answers normally (ready, and a read that needs the database), and to their answer.
	var recovery, answered time.Duration
	for {
		sent := time.Now()
		ready, err1 := api.TryDo("GET", "/readyz", nil)
		read, err2 := partner.TryDo("GET", probePath, nil)
		if err1 == nil && err2 == nil && ready.Status == 200 && read.Status == 200 {
			recovery, answered = max(0, sent.Sub(accepting)), time.Since(accepting)
			break
		}
		if time.Since(accepting) > 5*time.Second {
			t.Fatalf("5 s after PostgreSQL accepted connections again, the server still does not answer normally: /readyz %v %v, %s %v %v\n%s",
				ready, err1, probePath, read, err2, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var inFlight int // the records the outage left in flight, before the server releases them
	db.Get(&inFlight, `SELECT COUNT(*) FROM idempotency_keys WHERE state = 'in_flight'`)
	time.Sleep(time.Until(accepting.Add(3 * time.Second))) // load goes on past the 2 s bound
	stopLoad()

	// Every answer: a 2xx, or (PostgreSQL away) an immediate 503 database_unavailable.
	var acknowledged, retry []loadWrite
	var during, after, total, unavailable, cut int
	var lastFailure time.Time // the latest sending of a request that did not get a 2xx
	var slowest time.Duration
	for _, ex := range slices.Concat(exchanges...) {
		total++
		slowest = max(slowest, ex.took)
		what := fmt.Sprintf("%s at +%s", map[bool]string{true: "write", false: "read"}[ex.write != nil], ex.sent.Sub(down).Round(time.Millisecond))
		ok := ex.err == nil && ex.resp.Status < 300
		switch {
		case ex.err != nil:
			t.Errorf("%s: no answer within 2 s: %v", what, ex.err)
		case ok:
		case ex.resp.Status == 503:
			unavailable++
			if ex.resp.ErrorKey() != "database_unavailable" || ex.resp.Header.Get("Retry-After") != "1" {
				t.Errorf("%s: 503 %q with Retry-After %q, want database_unavailable with Retry-After 1", what, ex.resp.ErrorKey(), ex.resp.Header.Get("Retry-After"))
			}
			for _, word := range driverWords {
				if strings.Contains(strings.ToLower(string(ex.resp.Body)), strings.ToLower(word)) {
					t.Errorf("%s: the 503 says %q: %s", what, word, ex.resp.Body)
				}
			}
		default:
			t.Errorf("%s: %d %s, want a 2xx or 503 database_unavailable", what, ex.resp.Status, ex.resp.Body)
		}
		if !ok {
			lastFailure = ex.sent
		}
		if ex.write != nil && ok {
			acknowledged = append(acknowledged, *ex.write)
		} else if ex.write != nil {
			retry = append(retry, *ex.write)
		}
		if ex.write != nil && !ok && ex.sent.Before(down) {
			cut++ // sent before PostgreSQL had stopped: in its transaction when it was ended
		}
		if ex.sent.After(down) && ex.sent.Before(restarting) {
			during++
			if ok {
				t.Errorf("%s: %d while PostgreSQL was stopped", what, ex.resp.Status)
			}
		}
		if ex.sent.After(accepting.Add(2*time.Second)) && !ok {
			after++
		}
	}
	if during < 20 {
		t.Errorf("only %d requests while PostgreSQL was stopped: the test proves nothing", during)
	}
	if cut == 0 {
		t.Errorf("no write was cut off in its transaction by the stop: the test proves nothing about records left in flight")
	}
	if after > 0 {
		t.Errorf("%d requests sent more than 2 s after PostgreSQL accepted connections again got no 2xx", after)
	}
	if recovery > 2*time.Second {
		t.Errorf("the first requests the server answered normally were sent %s after PostgreSQL accepted connections again, want within 2 s", recovery)
	}

	// Every write without a 2xx retried with its key.
	var mu sync.Mutex
	inUse, replayed := 0, 0
	retried := time.Now()
	deadline := retried.Add(15 * time.Second)
	var retries sync.WaitGroup
	for part := range workers {
		retries.Add(1)
		go func() {
			defer retries.Done()
			for i := part; i < len(retry); i += workers {
				w := retry[i]
				for {
					r, err := partner.TryDo("POST", w.path, w.body(), "Idempotency-Key", w.key)
					if err != nil || time.Now().After(deadline) {
						t.Errorf("retry of %s: %v %v", w.name, r, err)
						break
					}
					if r.Status == 200 {
						if r.Data()["name"] != w.name {
							t.Errorf("retry of %s answered %s", w.name, r.Body)
						}
						mu.Lock()
						if r.Header.Get("Idempotent-Replayed") == "true" {
							replayed++
						}
						mu.Unlock()
						break
					}
					if r.Status != 409 || r.ErrorKey() != "idempotency_key_in_use" || r.Header.Get("Retry-After") != "1" {
						t.Errorf("retry of %s: %d %s, want 200, or 409 idempotency_key_in_use with Retry-After 1 first", w.name, r.Status, r.Body)
						break
					}
					mu.Lock()
					inUse++
					mu.Unlock()
					time.Sleep(time.Second) // Retry-After
				}
			}
		}()
	}
	retries.Wait()
	retrying := time.Since(retried)

	// Exactly one object per write: acknowledged ones kept, retried ones not doubled.
	count := map[string]int{}
	for _, path := range []string{"/api/organizations", "/api/permissions/roles"} {
		for _, o := range partner.Do("GET", path, nil).List() {
			count[o["name"].(string)]++
		}
	}
	for _, w := range slices.Concat(acknowledged, retry) {
		if count[w.name] != 1 {
			t.Errorf("%d objects named %s (acknowledged: %v), want exactly 1", count[w.name], w.name, slices.Contains(acknowledged, w))
		}
	}
	var leftInFlight int
	db.Get(&leftInFlight, `SELECT COUNT(*) FROM idempotency_keys WHERE state = 'in_flight'`)
	if leftInFlight != 0 {
		t.Errorf("%d idempotency records still in flight after every retry finished", leftInFlight)
	}

	// The outbox resumes: an event created now, and every one before, reach the receiver.
	if r := partner.Do("POST", "/api/permissions/roles", map[string]any{"name": "after-recovery", "actions": []string{}}); r.Status != 200 {
		t.Fatalf("create a role after the restart: %d %s", r.Status, r.Body)
	}
	var events []string
	if err := db.Select(&events, `SELECT id FROM events WHERE type = 'role.created'`); err != nil {
		t.Fatal(err)
	}
	outbox := time.Now()
	servertest.Eventually(t, 20*time.Second, "every role.created event received and the outbox drained", func() bool {
		var unsettled int
		db.Get(&unsettled, `SELECT COUNT(*) FROM webhook_deliveries WHERE state <> 'delivered'`)
		return rc.missing(events) == 0 && unsettled == 0
	})
	if strings.Contains(logs.String(), `"internal error"`) {
		t.Errorf("the server logged an internal error:\n%s", logs)
	}
	t.Logf("PostgreSQL stopped (fast shutdown) for %s under %d workers: %d requests, %d answered 503 database_unavailable "+
		"(%d of them sent while it was down), slowest answer %s; /readyz 503 meanwhile; "+
		"once PostgreSQL accepted connections again, the first requests answered normally were sent after %s (answered after %s), "+
		"the last one that failed was sent at %s relative to it; "+
		"%d writes acknowledged, none lost; %d retried with their Idempotency-Key (%d of them sent before PostgreSQL had stopped, "+
		"%d idempotency records in flight when PostgreSQL came back, "+
		"%d answers 409 idempotency_key_in_use, %d replays), each exactly one object, retries done in %s; "+
		"%d role.created events all delivered, %s after the last was created; whole test %s",
		restarting.Sub(down).Round(time.Millisecond), workers, total, unavailable, during, slowest.Round(time.Millisecond),
		recovery.Round(time.Millisecond), answered.Round(time.Millisecond), lastFailure.Sub(accepting).Round(time.Millisecond),
		len(acknowledged), len(retry), cut, inFlight, inUse, replayed, retrying.Round(time.Millisecond),
		len(events), time.Since(outbox).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}
