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
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/tenants"
)

// A command of the program: its name (one word, or a group and a word), its arguments as the
// help shows them, what it does in one line, and how it runs. The help, the dispatch and the
// README's command table (TestREADMEListsEveryCommand) all come from this one list.
type command struct {
	name, args, summary string
	run                 func(m *Main, ctx context.Context, args []string) error
}

var commands []command

// init sets commands, whose help refers back to commands.
func init() {
	commands = []command{
		{"serve", "[--addr HOST:PORT] [--database PATH] [--bootstrap-key-file PATH] [flags]",
			"migrate the database and serve the API", (*Main).serve},
		{"migrate", "[--database PATH]", "apply the database migrations and exit", (*Main).migrate},
		{"partner create", "--name NAME [--database PATH]",
			"create a partner with its owner organization; prints the new partner key alone on stdout", (*Main).createPartner},
		{"partner issue-key", "--partner-id ID [--name NAME] [--database PATH]",
			"give an existing partner a new partner key (printed alone on stdout)", (*Main).issuePartnerKey},
		{"signing-key rotate", "[--database PATH] [--secret-key-file PATH]",
			"add a new token signing key; older ones verify until their tokens expire", (*Main).rotateSigningKey},
		{"secret-key generate", "--secret-key-file PATH", "write a new secret key file (never overwrites one)",
			func(m *Main, _ context.Context, args []string) error { return m.generateSecretKey(args) }},
		{"secret-key rotate", "--secret-key-file PATH [--database PATH]",
			"put a new key first in the secret key file and seal every stored secret with it", (*Main).rotateSecretKey},
		{"export", "[--database PATH] > dump.jsonl", "write the whole database to stdout as JSON lines", (*Main).export},
		{"import", "[--database URL] < dump.jsonl", "load a dump from stdin into a new database", (*Main).importDump},
		{"version", "", "print this program's version and the API versions it serves",
			func(m *Main, _ context.Context, args []string) error { return m.version(args) }},
		{"help", "[COMMAND]", "print this list, or the subcommands of a COMMAND such as partner",
			func(m *Main, _ context.Context, args []string) error { return m.help(args) }},
	}
}

// usage writes the list of commands, or those of group ("partner", say) when it is one.
func usage(w io.Writer, group string) {
	if group == "" {
		fmt.Fprint(w, "tenantry is the Tenantry API server and its administration commands.\n\nUsage: tenantry COMMAND [flags]\n\nCommands:\n")
	} else {
		fmt.Fprintf(w, "Usage: tenantry %s SUBCOMMAND [flags]\n\nSubcommands:\n", group)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		if group == "" || strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
		}
	}
	tw.Flush()
	fmt.Fprint(w, `
tenantry COMMAND -h lists the command's flags. Every setting is a flag and a variable, TENANTRY_
and the flag's name in capitals, dashes as underscores (--secret-key-file is
TENANTRY_SECRET_KEY_FILE); the flag wins over the variable, which wins over the default.
`)
}

// isGroup reports whether name is the first word of commands of two words (partner, ...).
func isGroup(name string) bool {
	for _, c := range commands {
		if strings.HasPrefix(c.name, name+" ") {
			return true
		}
	}
	return false
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

func (m *Main) help(args []string) error {
	switch {
	case len(args) == 0 || len(args) == 1 && isHelp(args[0]):
		usage(m.Stdout, "")
	case len(args) == 1 && isGroup(args[0]):
		usage(m.Stdout, args[0])
	case len(args) >= 1 && findCommand(args) != nil:
		return findCommand(args).run(m, context.Background(), []string{"-h"})
	default:
		fmt.Fprintf(m.Stderr, "tenantry help: unknown command %q\n", strings.Join(args, " "))
		usage(m.Stderr, "")
		return errUsage
	}
	return nil
}

// findCommand is the command args begin with, or nil.
func findCommand(args []string) *command {
	for i := range commands {
		c := &commands[i]
		group, sub, two := strings.Cut(c.name, " ")
		if !two && args[0] == c.name || two && args[0] == group && len(args) > 1 && args[1] == sub {
			return c
		}
	}
	return nil
}

const bootstrapName = "Bootstrap partner"

// errUsage marks a mistake in the command line (exit status 2).
var errUsage = errors.New("usage")

// errHelp stops a command whose help was asked for (-h): Run returns nil (exit status 0).
var errHelp = errors.New("help")

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
// Asking for help (-h, --help, help) is not an error.
func (m *Main) Run(ctx context.Context, args []string) error {
	err := m.run(ctx, args)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func (m *Main) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		usage(m.Stderr, "")
		return errUsage
	}
	if isHelp(args[0]) {
		return m.help(args[1:])
	}
	if c := findCommand(args); c != nil {
		return c.run(m, ctx, args[len(strings.Fields(c.name)):])
	}
	if isGroup(args[0]) {
		if len(args) > 1 && isHelp(args[1]) {
			usage(m.Stdout, args[0])
			return nil
		}
		if len(args) > 1 {
			fmt.Fprintf(m.Stderr, "unknown command %q\n", args[0]+" "+args[1])
		} else {
			fmt.Fprintf(m.Stderr, "tenantry %s needs a subcommand\n", args[0])
		}
		usage(m.Stderr, args[0])
		return errUsage
	}
	fmt.Fprintf(m.Stderr, "unknown command %q\n", args[0])
	usage(m.Stderr, "")
	return errUsage
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
	fs.Usage = func() {
		for _, c := range commands {
			if c.name == name {
				fmt.Fprintf(fs.Output(), "Usage: tenantry %s\n\n%s.\n\nFlags:\n", strings.TrimSpace(name+" "+c.args), strings.ToUpper(c.summary[:1])+c.summary[1:])
			}
		}
		fs.PrintDefaults()
	}
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
	// The help goes to stdout and is no error; a mistake's message, and the help, to stderr.
	fs := cl.fs
	var out strings.Builder
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(m.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		io.WriteString(m.Stdout, out.String())
		return errHelp
	}
	if cl.err != nil {
		return fmt.Errorf("configuration: %w", cl.err)
	}
	if err != nil {
		io.WriteString(m.Stderr, out.String())
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
	name := cl.argument("name", "", "the partner's name; required")
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
	partnerID := cl.argument("partner-id", "", "the partner's id; required")
	name := cl.argument("name", "issued-by-operator", "the new key's name")
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

// Version is this program's version: set at build time with -ldflags "-X main.Version=v1.2.3",
// else the module's version as go build recorded it, with the commit it was built from.
var Version = ""

// version prints the program's version and the API versions (X-Polytomic-Version) it serves.
func (m *Main) version(args []string) error {
	cl := m.commandLine("version", 0)
	if err := m.parse(cl, args); err != nil {
		return err
	}
	v, commit, goVersion := Version, "", runtime.Version()
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision":
				commit = s.Value
			case s.Key == "vcs.modified" && s.Value == "true":
				commit += ", modified"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if commit != "" {
		v += " (commit " + commit + ")"
	}
	fmt.Fprintf(m.Stdout, "tenantry %s, built with %s\n", v, goVersion)
	fmt.Fprintf(m.Stdout, "API versions (X-Polytomic-Version): %s; the newest, %s, is the default\n",
		strings.Join(tenants.Versions, ", "), tenants.LatestVersion)
	return nil
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
