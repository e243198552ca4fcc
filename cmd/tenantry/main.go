// Command tenantry is the Tenantry server and its administration commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/delivery"
	"github.com/tenantry/tenantry/tenants"
)

const usage = `Usage:
  tenantry serve [--addr HOST:PORT] [--database PATH] [--bootstrap-key-file PATH]
  tenantry migrate [--database PATH]
  tenantry partner create --name NAME [--database PATH]
  tenantry partner issue-key --partner-id ID [--name NAME] [--database PATH]
  tenantry signing-key rotate [--database PATH] [--secret-key-file PATH]
  tenantry secret-key generate --secret-key-file PATH
  tenantry secret-key rotate --secret-key-file PATH [--database PATH]
  tenantry export [--database PATH] > dump.jsonl
  tenantry import [--database URL] < dump.jsonl

Environment: TENANTRY_ADDR, TENANTRY_DATABASE, TENANTRY_BOOTSTRAP_KEY_FILE,
TENANTRY_SECRET_KEY_FILE, and one variable per serve flag (tenantry serve -h lists them).
`

const (
	defaultAddr     = "127.0.0.1:8080"
	defaultDatabase = "./data/tenantry.db"
	bootstrapName   = "Bootstrap partner"
)

// errUsage marks a mistake in the command line (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "tenantry:", err)
		os.Exit(1)
	}
	if m.Serving() {
		<-ctx.Done()
		if err := m.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "tenantry:", err)
			os.Exit(1)
		}
	}
}

// Main is the program, as a value an end-to-end test can start (Run) and stop (Close).
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string

	log  *slog.Logger
	logs *logBuffer // the server's log output, in batches
	db   *sqlx.DB
	srv  *server.Server
	http *http.Server
	ln   net.Listener
	done chan error
}

// Run executes one command. For serve it returns once the server is listening; Close stops it.
func (m *Main) Run(ctx context.Context, args []string) error {
	// Logs are JSON lines, or text with TENANTRY_LOG_FORMAT=text.
	if m.env("TENANTRY_LOG_FORMAT", "json") == "text" {
		m.log = slog.New(slog.NewTextHandler(m.Stderr, nil))
	} else {
		m.log = slog.New(slog.NewJSONHandler(m.Stderr, nil))
	}
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return errUsage
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "serve":
		return m.serve(ctx, rest)
	case cmd == "migrate":
		return m.migrate(ctx, rest)
	case cmd == "partner" && len(rest) > 0 && rest[0] == "create":
		return m.createPartner(ctx, rest[1:])
	case cmd == "partner" && len(rest) > 0 && rest[0] == "issue-key":
		return m.issuePartnerKey(ctx, rest[1:])
	case cmd == "signing-key" && len(rest) > 0 && rest[0] == "rotate":
		return m.rotateSigningKey(ctx, rest[1:])
	case cmd == "secret-key" && len(rest) > 0 && rest[0] == "generate":
		return m.generateSecretKey(rest[1:])
	case cmd == "secret-key" && len(rest) > 0 && rest[0] == "rotate":
		return m.rotateSecretKey(ctx, rest[1:])
	case cmd == "export":
		return m.export(ctx, rest)
	case cmd == "import":
		return m.importDump(ctx, rest)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	default:
		fmt.Fprintf(m.Stderr, "unknown command %q\n%s", args[0], usage)
		return errUsage
	}
}

// Addr is the address the server listens on (useful with port 0).
func (m *Main) Addr() string { return m.ln.Addr().String() }

// Serving reports whether Run started a server.
func (m *Main) Serving() bool { return m.http != nil }

// Close stops accepting connections, lets requests in flight finish (up to 10 s) and closes
// the database. A second Close does nothing.
func (m *Main) Close() error {
	var err error
	if m.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err = m.http.Shutdown(ctx)
		if serveErr := <-m.done; !errors.Is(serveErr, http.ErrServerClosed) {
			err = errors.Join(err, serveErr)
		}
		m.srv.Close()
		m.http = nil
	}
	if m.db != nil {
		err = errors.Join(err, m.db.Close())
		m.db = nil
	}
	if m.logs != nil {
		err = errors.Join(err, m.logs.Close())
		m.logs = nil
	}
	return err
}

func (m *Main) flags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("tenantry "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	db := fs.String("database", m.env("TENANTRY_DATABASE", defaultDatabase), "a SQLite file path or a postgres:// URL")
	return fs, db
}

// secretKeyFlag declares --secret-key-file, the operator's key that seals secrets at rest.
func (m *Main) secretKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("secret-key-file", m.env("TENANTRY_SECRET_KEY_FILE", ""),
		"a file of secret keys (tenantry secret-key generate writes one) that seals stored secrets; none: they are stored unencrypted (TENANTRY_SECRET_KEY_FILE)")
}

// sealer loads the secret key file at path; "" is none (a nil Sealer).
func sealer(path string) (*tenants.Sealer, error) {
	if path == "" {
		return nil, nil
	}
	return tenants.LoadSealer(path)
}

func (m *Main) env(name, fallback string) string {
	if m.Getenv != nil {
		if v := m.Getenv(name); v != "" {
			return v
		}
	}
	return fallback
}

// envReader reads typed settings from the environment, collecting malformed ones as err.
type envReader struct {
	m   *Main
	err error
}

func (r *envReader) read(name string, parse func(string) error) {
	if v := r.m.env(name, ""); v != "" {
		if err := parse(v); err != nil {
			r.err = errors.Join(r.err, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	}
}

func (r *envReader) duration(name string, def time.Duration) time.Duration {
	r.read(name, func(v string) (err error) { def, err = time.ParseDuration(v); return })
	return def
}

func (r *envReader) boolean(name string) (b bool) {
	r.read(name, func(v string) (err error) { b, err = strconv.ParseBool(v); return })
	return b
}

func (r *envReader) float(name string, def float64) float64 {
	r.read(name, func(v string) (err error) { def, err = strconv.ParseFloat(v, 64); return })
	return def
}

func (r *envReader) integerOr(name string, def int) int {
	r.read(name, func(v string) (err error) { def, err = strconv.Atoi(v); return })
	return def
}

func (r *envReader) integer(name string) (n int) {
	r.read(name, func(v string) (err error) { n, err = strconv.Atoi(v); return })
	return n
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

func (m *Main) serve(ctx context.Context, args []string) (err error) {
	fs, dbPath := m.flags("serve")
	addr := fs.String("addr", m.env("TENANTRY_ADDR", defaultAddr), "address to listen on")
	keyFile := fs.String("bootstrap-key-file", m.env("TENANTRY_BOOTSTRAP_KEY_FILE", ""),
		"where the first start writes the bootstrap partner key (default: bootstrap-partner-key beside the database)")
	secretKeyFile := m.secretKeyFlag(fs)
	// Every setting is a flag whose default comes from its environment variable.
	env := envReader{m: m}
	logFormat := fs.String("log-format", m.env("TENANTRY_LOG_FORMAT", "json"), "json or text (TENANTRY_LOG_FORMAT)")
	sunset := fs.String("oldest-version-sunset", m.env("TENANTRY_OLDEST_VERSION_SUNSET", ""),
		"YYYY-MM-DD: announce this sunset (Deprecation and Sunset headers) on responses served at the oldest API version (TENANTRY_OLDEST_VERSION_SUNSET)")
	idempotencyTTL := fs.Duration("idempotency-ttl", env.duration("TENANTRY_IDEMPOTENCY_TTL", server.DefaultIdempotencyTTL),
		"how long Idempotency-Key records are kept (TENANTRY_IDEMPOTENCY_TTL)")
	eventRetention := fs.Duration("event-retention", env.duration("TENANTRY_EVENT_RETENTION", server.DefaultEventRetention),
		"how long events (and finished webhook deliveries) are kept (TENANTRY_EVENT_RETENTION)")
	rateLimit := fs.Float64("rate-limit", env.float("TENANTRY_RATE_LIMIT", server.DefaultRatePerSecond),
		"requests per second each credential may make, sustained; negative: no limit (TENANTRY_RATE_LIMIT)")
	rateBurst := fs.Int("rate-burst", env.integerOr("TENANTRY_RATE_BURST", server.DefaultRateBurst),
		"requests a credential may make at once (TENANTRY_RATE_BURST)")
	authLimit := fs.Float64("auth-failure-limit", env.float("TENANTRY_AUTH_FAILURE_LIMIT", server.DefaultAuthFailuresPerIP),
		"failed authentications per second allowed from one client address; negative: no limit (TENANTRY_AUTH_FAILURE_LIMIT)")
	authBurst := fs.Int("auth-failure-burst", env.integerOr("TENANTRY_AUTH_FAILURE_BURST", server.DefaultAuthFailureBurst),
		"failed authentications one client address may make at once (TENANTRY_AUTH_FAILURE_BURST)")
	metricsToken := fs.String("metrics-token", m.env("TENANTRY_METRICS_TOKEN", ""),
		"bearer token GET /metrics requires; without one, /metrics answers loopback clients only (TENANTRY_METRICS_TOKEN)")
	proxies := fs.String("trusted-proxies", m.env("TENANTRY_TRUSTED_PROXIES", ""),
		"comma-separated addresses or CIDRs of proxies whose X-Forwarded-For names the client (TENANTRY_TRUSTED_PROXIES)")
	cachedKeys := fs.Int("cached-keys", env.integerOr("TENANTRY_CACHED_KEYS", keys.DefaultCachedKeys),
		"keys whose principal is kept in memory, least recently used evicted first; negative: none (TENANTRY_CACHED_KEYS)")
	cachedTokens := fs.Int("cached-tokens", env.integerOr("TENANTRY_CACHED_TOKENS", keys.DefaultCachedTokens),
		"verified temporary tokens kept in memory (TENANTRY_CACHED_TOKENS)")
	var webhooks delivery.Config
	fs.BoolVar(&webhooks.AllowPrivate, "webhook-allow-private", env.boolean("TENANTRY_WEBHOOK_ALLOW_PRIVATE"),
		"let webhooks reach loopback, private, link-local and other non-public addresses, and use plain http (TENANTRY_WEBHOOK_ALLOW_PRIVATE)")
	fs.DurationVar(&webhooks.PollInterval, "webhook-poll-interval", env.duration("TENANTRY_WEBHOOK_POLL_INTERVAL", 0),
		"how often the webhook outbox is polled (TENANTRY_WEBHOOK_POLL_INTERVAL; default 1s)")
	fs.DurationVar(&webhooks.Timeout, "webhook-timeout", env.duration("TENANTRY_WEBHOOK_TIMEOUT", 0),
		"timeout of one delivery attempt (TENANTRY_WEBHOOK_TIMEOUT; default 10s)")
	fs.IntVar(&webhooks.MaxAttempts, "webhook-max-attempts", env.integer("TENANTRY_WEBHOOK_MAX_ATTEMPTS"),
		"attempts before a delivery is failed (TENANTRY_WEBHOOK_MAX_ATTEMPTS; default 5)")
	fs.DurationVar(&webhooks.BaseBackoff, "webhook-base-backoff", env.duration("TENANTRY_WEBHOOK_BASE_BACKOFF", 0),
		"ceiling of the random wait after the first failed attempt, doubled after each further one (TENANTRY_WEBHOOK_BASE_BACKOFF; default 4m)")
	fs.DurationVar(&webhooks.MaxBackoff, "webhook-max-backoff", env.duration("TENANTRY_WEBHOOK_MAX_BACKOFF", 0),
		"largest ceiling of a wait between attempts (TENANTRY_WEBHOOK_MAX_BACKOFF; default 1h)")
	if env.err != nil {
		return fmt.Errorf("configuration: %w", env.err)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *logFormat != "json" && *logFormat != "text" {
		fmt.Fprintf(m.Stderr, "tenantry serve: --log-format must be json or text, not %q\n", *logFormat)
		return errUsage
	}
	// The server's logs go out in batches (logBuffer); if it does not start, at once.
	m.logs = newLogBuffer(m.Stderr)
	defer func() {
		if err != nil {
			m.logs.Close()
			m.logs = nil
		}
	}()
	m.log = slog.New(slog.NewJSONHandler(m.logs, nil))
	if *logFormat == "text" {
		m.log = slog.New(slog.NewTextHandler(m.logs, nil))
	}
	cfg := server.Config{Log: m.log, Webhooks: webhooks, IdempotencyTTL: *idempotencyTTL, EventRetention: *eventRetention,
		RatePerSecond: *rateLimit, RateBurst: *rateBurst, AuthFailuresPerSecond: *authLimit, AuthFailureBurst: *authBurst,
		MetricsToken: *metricsToken, CachedKeys: *cachedKeys, CachedTokens: *cachedTokens}
	if *proxies != "" {
		cfg.TrustedProxies = strings.Split(*proxies, ",")
	}
	if *sunset != "" {
		t, err := time.Parse(time.DateOnly, *sunset)
		if err != nil {
			return fmt.Errorf("--oldest-version-sunset %q: give a date as YYYY-MM-DD", *sunset)
		}
		cfg.OldestVersionSunset = t
	}
	if *keyFile == "" {
		*keyFile = filepath.Join(filepath.Dir(*dbPath), "bootstrap-partner-key")
		if migrations.IsPostgres(*dbPath) {
			*keyFile = filepath.Join("data", "bootstrap-partner-key")
		}
	}
	if cfg.Sealer, err = sealer(*secretKeyFile); err != nil {
		return err
	}
	db, err := migrations.OpenAndMigrate(ctx, *dbPath)
	if err != nil {
		return err
	}
	m.db = db
	if err := m.sealSecrets(ctx, db, cfg.Sealer); err != nil {
		return err
	}
	created, err := keys.NewService(db).Bootstrap(ctx, bootstrapName, func(value string) error {
		return writeSecretFile(*keyFile, value+"\n")
	})
	if err != nil {
		return fmt.Errorf("bootstrap partner: %w", err)
	}
	if created {
		m.log.Info("created the bootstrap partner; its partner key is in the file named here", "path", *keyFile)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	m.ln = ln
	cfg.DB = db
	server.ReleaseMode() // here, not in main: the tests start the program through Run
	m.srv = server.New(cfg)
	m.http = &http.Server{
		Handler:           m.srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	m.done = make(chan error, 1)
	go func() { m.done <- m.http.Serve(ln) }()
	m.log.Info("listening", "addr", ln.Addr().String(), "database", redact(*dbPath))
	return m.logs.Flush() // what the start logged, before anyone waits for it
}

// sealSecrets brings the stored secrets under the current secret key (or, without one, checks
// that none needs a key) before the server starts.
func (m *Main) sealSecrets(ctx context.Context, db *sqlx.DB, s *tenants.Sealer) error {
	n, err := tenants.SealSecrets(ctx, db, s)
	if err != nil {
		return fmt.Errorf("secrets at rest: %w", err)
	}
	if n > 0 {
		if err := migrations.Compact(ctx, db); err != nil {
			return err
		}
	}
	if s == nil {
		m.log.Warn("secrets are stored unencrypted (connection secrets, SSO client secrets, webhook secrets, token signing keys): " +
			"pass --secret-key-file to seal them")
	} else if n > 0 {
		m.log.Info("sealed stored secrets with the current secret key", "values", n, "key_id", s.CurrentKeyID())
	}
	return nil
}

// onDatabase finishes a command line: it parses args, refuses (as a usage error) a required
// flag left empty, opens and migrates the database, and runs fn on it.
func (m *Main) onDatabase(ctx context.Context, fs *flag.FlagSet, dbPath *string, args []string, required map[string]*string,
	fn func(db *sqlx.DB) error) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	for name, v := range required {
		if *v == "" {
			fmt.Fprintf(m.Stderr, "%s: --%s is required\n", fs.Name(), name)
			return errUsage
		}
	}
	db, err := migrations.OpenAndMigrate(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

func (m *Main) migrate(ctx context.Context, args []string) error {
	fs, dbPath := m.flags("migrate")
	return m.onDatabase(ctx, fs, dbPath, args, nil, func(*sqlx.DB) error {
		m.log.Info("database is up to date", "database", redact(*dbPath))
		return nil
	})
}

// createPartner prints the new partner key alone on stdout so scripts can capture it.
func (m *Main) createPartner(ctx context.Context, args []string) error {
	fs, dbPath := m.flags("partner create")
	name := fs.String("name", "", "the partner's name (required)")
	return m.onDatabase(ctx, fs, dbPath, args, map[string]*string{"name": name}, func(db *sqlx.DB) error {
		// The key is printed before the partner is committed: if stdout fails, nothing is created.
		p, err := keys.NewService(db).CreatePartner(ctx, *name, m.printKey)
		if err != nil {
			return err
		}
		m.log.Info("created partner", "partner_id", p.ID, "name", p.Name, "owner_organization_id", p.OwnerOrgID)
		return nil
	})
}

// printKey writes a new key alone on stdout; the caller commits only if it succeeds.
func (m *Main) printKey(value string) error {
	if _, err := fmt.Fprintln(m.Stdout, value); err != nil {
		return fmt.Errorf("print the key: %w", err)
	}
	if f, ok := m.Stdout.(interface{ Sync() error }); ok {
		f.Sync() // a terminal or pipe cannot sync; a file can, and then the key is on disk
	}
	return nil
}

// issuePartnerKey gives an existing partner a new key: the operator's way to let a partner
// that lost its keys back in. The key alone goes to stdout.
func (m *Main) issuePartnerKey(ctx context.Context, args []string) error {
	fs, dbPath := m.flags("partner issue-key")
	partnerID := fs.String("partner-id", "", "the partner's id (required)")
	name := fs.String("name", "issued-by-operator", "the new key's name")
	return m.onDatabase(ctx, fs, dbPath, args, map[string]*string{"partner-id": partnerID}, func(db *sqlx.DB) error {
		if err := keys.NewService(db).IssuePartnerKey(ctx, *partnerID, *name, m.printKey); err != nil {
			return err
		}
		m.log.Info("issued a partner key", "partner_id", *partnerID, "name", *name)
		return nil
	})
}

// rotateSigningKey adds a new token signing key; older ones verify until their tokens expire.
func (m *Main) rotateSigningKey(ctx context.Context, args []string) error {
	fs, dbPath := m.flags("signing-key rotate")
	secretKeyFile := m.secretKeyFlag(fs)
	return m.onDatabase(ctx, fs, dbPath, args, nil, func(db *sqlx.DB) error {
		svc := keys.NewService(db)
		var err error
		if svc.Sealer, err = sealer(*secretKeyFile); err != nil {
			return err
		}
		// The new private key is sealed as the others are: refused without the key they need.
		if _, err := tenants.SealSecrets(ctx, db, svc.Sealer); err != nil {
			return fmt.Errorf("secrets at rest: %w", err)
		}
		kid, err := svc.RotateSigningKey(ctx)
		if err != nil {
			return err
		}
		m.log.Info("rotated the token signing key; earlier keys verify until their tokens have expired",
			"kid", kid, "verify_old_keys_for_seconds", keys.MaxTokenTTL)
		return nil
	})
}

// generateSecretKey writes a new secret key file (mode 0600); it never replaces one.
func (m *Main) generateSecretKey(args []string) error {
	fs := flag.NewFlagSet("tenantry secret-key generate", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	path := m.secretKeyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *path == "" {
		fmt.Fprintln(m.Stderr, "tenantry secret-key generate: --secret-key-file is required")
		return errUsage
	}
	if _, err := os.Stat(*path); err == nil {
		return fmt.Errorf("%s exists: a secret key file is never overwritten (rotate it with `tenantry secret-key rotate`)", *path)
	}
	if err := writeSecretFile(*path, tenants.GenerateSecretKey()+"\n"); err != nil {
		return err
	}
	s, err := tenants.LoadSealer(*path)
	if err != nil {
		return err
	}
	m.log.Info("wrote a new secret key file", "path", *path, "key_id", s.CurrentKeyID())
	return nil
}

// rotateSecretKey puts a new key first in the secret key file, keeping the older ones below it
// (so a replica that has not yet re-read the file still opens what it sealed), then seals every
// stored secret with the new key in one transaction.
func (m *Main) rotateSecretKey(ctx context.Context, args []string) error {
	fs, dbPath := m.flags("secret-key rotate")
	path := m.secretKeyFlag(fs)
	return m.onDatabase(ctx, fs, dbPath, args, map[string]*string{"secret-key-file": path}, func(db *sqlx.DB) error {
		if _, err := tenants.LoadSealer(*path); err != nil {
			return err
		}
		old, err := os.ReadFile(*path)
		if err != nil {
			return err
		}
		if err := writeSecretFile(*path, tenants.GenerateSecretKey()+"\n"+string(old)); err != nil {
			return err
		}
		s, err := tenants.LoadSealer(*path)
		if err != nil {
			return err
		}
		n, err := tenants.SealSecrets(ctx, db, s)
		if err != nil {
			return fmt.Errorf("seal with the new key (the file holds it, first, and the old ones: run rotate again): %w", err)
		}
		if err := migrations.Compact(ctx, db); err != nil {
			return err
		}
		m.log.Info("rotated the secret key: every stored secret is sealed with the new key", "key_id", s.CurrentKeyID(), "values", n)
		return nil
	})
}

// export writes the whole database to stdout as JSON lines (see migrations.Export). It holds
// every secret the database holds, so a file it is written to is made readable by its owner only.
func (m *Main) export(ctx context.Context, args []string) error {
	fs, dbPath := m.flags("export")
	return m.onDatabase(ctx, fs, dbPath, args, nil, func(db *sqlx.DB) error {
		if f, ok := m.Stdout.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				if err := f.Chmod(0o600); err != nil {
					return fmt.Errorf("make the dump file readable by its owner only: %w", err)
				}
			}
		}
		n, err := migrations.Export(ctx, db, m.Stdout)
		if err == nil {
			m.log.Info("exported", "rows", n, "database", redact(*dbPath))
		}
		return err
	})
}

// importDump loads a dump from stdin into a new, migrated database.
func (m *Main) importDump(ctx context.Context, args []string) error {
	fs, dbPath := m.flags("import")
	return m.onDatabase(ctx, fs, dbPath, args, nil, func(db *sqlx.DB) error {
		n, err := migrations.Import(ctx, db, m.Stdin)
		if err == nil {
			m.log.Info("imported", "rows", n, "database", redact(*dbPath))
		}
		return err
	})
}

// redact drops the password from a database URL before it is logged.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}

// writeSecretFile replaces path with content, readable by the owner only, atomically.
func writeSecretFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bootstrap-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
