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
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/server"
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

Every command takes --log-format json|text. Every setting is a flag and a variable
(--secret-key-file is TENANTRY_SECRET_KEY_FILE); the flag wins. tenantry serve -h lists them.
`

const bootstrapName = "Bootstrap partner"

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

// commandLine is the flag set of the command name with the settings of groups declared on it.
func (m *Main) commandLine(name string, groups group) *commandLine {
	fs := flag.NewFlagSet("tenantry "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cl := &commandLine{fs: fs, getenv: func(string) string { return "" }}
	if m.Getenv != nil {
		cl.getenv = m.Getenv
	}
	cl.config.declare(cl, groups)
	return cl
}

// parse reads a command line over the settings' variables; it refuses a malformed variable
// (exit status 1), and a malformed flag, a stray argument or a required flag left empty as a
// usage error. Then the command logs in the format chosen.
func (m *Main) parse(cl *commandLine, args []string, required ...string) error {
	if cl.err != nil {
		return fmt.Errorf("configuration: %w", cl.err)
	}
	fs := cl.fs
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if cl.logFormat != "json" && cl.logFormat != "text" {
		fmt.Fprintf(m.Stderr, "%s: --log-format must be json or text, not %q\n", fs.Name(), cl.logFormat)
		return errUsage
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			fmt.Fprintf(m.Stderr, "%s: --%s is required\n", fs.Name(), name)
			return errUsage
		}
	}
	m.log = newLogger(m.Stderr, cl.logFormat)
	return nil
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, nil))
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

// sealer loads the secret key file at path; "" is none (a nil Sealer).
func sealer(path string) (*tenants.Sealer, error) {
	if path == "" {
		return nil, nil
	}
	return tenants.LoadSealer(path)
}

func (m *Main) serve(ctx context.Context, args []string) (err error) {
	cl := m.commandLine("serve", allSettings)
	if err := m.parse(cl, args); err != nil {
		return err
	}
	// The server's logs go out in batches (logBuffer); if it does not start, at once.
	m.logs = newLogBuffer(m.Stderr)
	defer func() {
		if err != nil {
			m.logs.Close()
			m.logs = nil
		}
	}()
	m.log = newLogger(m.logs, cl.logFormat)
	cfg, err := cl.serverConfig()
	if err != nil {
		return err
	}
	db, err := migrations.OpenAndMigrate(ctx, cl.database)
	if err != nil {
		return err
	}
	m.db = db
	if err := m.sealSecrets(ctx, db, cfg.Sealer); err != nil {
		return err
	}
	if err := m.bootstrap(ctx, db, cl.bootstrapKeyPath()); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cl.addr)
	if err != nil {
		return err
	}
	m.ln = ln
	cfg.DB, cfg.Log = db, m.log
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
	m.log.Info("listening", "addr", ln.Addr().String(), "database", redact(cl.database))
	return m.logs.Flush() // what the start logged, before anyone waits for it
}

// bootstrap creates the first partner in an empty database and writes its key to keyFile.
func (m *Main) bootstrap(ctx context.Context, db *sqlx.DB, keyFile string) error {
	created, err := keys.NewService(db).Bootstrap(ctx, bootstrapName, func(value string) error {
		return writeSecretFile(keyFile, value+"\n")
	})
	if err != nil {
		return fmt.Errorf("bootstrap partner: %w", err)
	}
	if created {
		m.log.Info("created the bootstrap partner; its partner key is in the file named here", "path", keyFile)
	}
	return nil
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

// onDatabase finishes a command line: it parses args (see parse), opens and migrates the
// database, and runs fn on it.
func (m *Main) onDatabase(ctx context.Context, cl *commandLine, args []string, required []string, fn func(db *sqlx.DB) error) error {
	if err := m.parse(cl, args, required...); err != nil {
		return err
	}
	db, err := migrations.OpenAndMigrate(ctx, cl.database)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

func (m *Main) migrate(ctx context.Context, args []string) error {
	cl := m.commandLine("migrate", databaseSettings)
	return m.onDatabase(ctx, cl, args, nil, func(*sqlx.DB) error {
		m.log.Info("database is up to date", "database", redact(cl.database))
		return nil
	})
}

// createPartner prints the new partner key alone on stdout so scripts can capture it.
func (m *Main) createPartner(ctx context.Context, args []string) error {
	cl := m.commandLine("partner create", databaseSettings)
	name := cl.fs.String("name", "", "the partner's name (required)")
	return m.onDatabase(ctx, cl, args, []string{"name"}, func(db *sqlx.DB) error {
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
	cl := m.commandLine("partner issue-key", databaseSettings)
	partnerID := cl.fs.String("partner-id", "", "the partner's id (required)")
	name := cl.fs.String("name", "issued-by-operator", "the new key's name")
	return m.onDatabase(ctx, cl, args, []string{"partner-id"}, func(db *sqlx.DB) error {
		if err := keys.NewService(db).IssuePartnerKey(ctx, *partnerID, *name, m.printKey); err != nil {
			return err
		}
		m.log.Info("issued a partner key", "partner_id", *partnerID, "name", *name)
		return nil
	})
}

// rotateSigningKey adds a new token signing key; older ones verify until their tokens expire.
func (m *Main) rotateSigningKey(ctx context.Context, args []string) error {
	cl := m.commandLine("signing-key rotate", databaseSettings|secretKeySettings)
	return m.onDatabase(ctx, cl, args, nil, func(db *sqlx.DB) error {
		svc := keys.NewService(db)
		var err error
		if svc.Sealer, err = sealer(cl.secretKeyFile); err != nil {
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
	cl := m.commandLine("secret-key generate", secretKeySettings)
	if err := m.parse(cl, args, "secret-key-file"); err != nil {
		return err
	}
	path := cl.secretKeyFile
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists: a secret key file is never overwritten (rotate it with `tenantry secret-key rotate`)", path)
	}
	if err := writeSecretFile(path, tenants.GenerateSecretKey()+"\n"); err != nil {
		return err
	}
	s, err := tenants.LoadSealer(path)
	if err != nil {
		return err
	}
	m.log.Info("wrote a new secret key file", "path", path, "key_id", s.CurrentKeyID())
	return nil
}

// rotateSecretKey puts a new key first in the secret key file, keeping the older ones below it
// (so a replica that has not yet re-read the file still opens what it sealed), then seals every
// stored secret with the new key in one transaction.
func (m *Main) rotateSecretKey(ctx context.Context, args []string) error {
	cl := m.commandLine("secret-key rotate", databaseSettings|secretKeySettings)
	return m.onDatabase(ctx, cl, args, []string{"secret-key-file"}, func(db *sqlx.DB) error {
		path := cl.secretKeyFile
		if _, err := tenants.LoadSealer(path); err != nil {
			return err
		}
		old, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := writeSecretFile(path, tenants.GenerateSecretKey()+"\n"+string(old)); err != nil {
			return err
		}
		s, err := tenants.LoadSealer(path)
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
	cl := m.commandLine("export", databaseSettings)
	return m.onDatabase(ctx, cl, args, nil, func(db *sqlx.DB) error {
		if f, ok := m.Stdout.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
				if err := f.Chmod(0o600); err != nil {
					return fmt.Errorf("make the dump file readable by its owner only: %w", err)
				}
			}
		}
		n, err := migrations.Export(ctx, db, m.Stdout)
		if err == nil {
			m.log.Info("exported", "rows", n, "database", redact(cl.database))
		}
		return err
	})
}

// importDump loads a dump from stdin into a new, migrated database.
func (m *Main) importDump(ctx context.Context, args []string) error {
	cl := m.commandLine("import", databaseSettings)
	return m.onDatabase(ctx, cl, args, nil, func(db *sqlx.DB) error {
		n, err := migrations.Import(ctx, db, m.Stdin)
		if err == nil {
			m.log.Info("imported", "rows", n, "database", redact(cl.database))
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
