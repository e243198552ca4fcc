package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/migrations"
	"github.com/tenantry/tenantry/server"
	"github.com/tenantry/tenantry/server/delivery"
)

// config is every setting of the program. Each is declared once, in declare: a flag --NAME,
// its variable TENANTRY_NAME (dashes as underscores), its default and its help. The flag wins
// over the variable, which wins over the default. The README's Configuration table lists
// every setting (TestREADMEListsEverySetting).
type config struct {
	logFormat     string
	database      string
	secretKeyFile string
	// serve's own
	addr, bootstrapKeyFile, sunset, trustedProxies string
	server                                         server.Config
}

const (
	defaultAddr     = "127.0.0.1:8080"
	defaultDatabase = "./data/tenantry.db"
)

// group is a set of settings, by the commands that take them. Every command takes log-format.
type group int

const (
	databaseSettings  group = 1 << iota // the commands that open the database
	secretKeySettings                   // the commands that seal or open stored secrets
	serveSettings                       // serve's own
	allSettings       = databaseSettings | secretKeySettings | serveSettings
)

func (c *config) declare(cl *commandLine, groups group) {
	cl.string(&c.logFormat, "log-format", "json", "how logs are written on stderr: json (a JSON object a line) or text")
	if groups&databaseSettings != 0 {
		cl.string(&c.database, "database", defaultDatabase, "a SQLite file path or a postgres:// URL")
	}
	if groups&secretKeySettings != 0 {
		cl.string(&c.secretKeyFile, "secret-key-file", "",
			"a file of secret keys (tenantry secret-key generate writes one) that seals stored secrets; none: they are stored unencrypted")
	}
	if groups&serveSettings == 0 {
		return
	}
	cl.string(&c.addr, "addr", defaultAddr, "address to listen on")
	cl.string(&c.bootstrapKeyFile, "bootstrap-key-file", "",
		"where the first start writes the bootstrap partner key; none: bootstrap-partner-key beside the database (in ./data for PostgreSQL)")
	cl.string(&c.sunset, "oldest-version-sunset", "",
		"YYYY-MM-DD: announce this sunset (Deprecation and Sunset headers) on responses served at the oldest API version")
	cl.string(&c.trustedProxies, "trusted-proxies", "",
		"comma-separated addresses or CIDRs of proxies whose X-Forwarded-For names the client")
	s := &c.server
	cl.duration(&s.IdempotencyTTL, "idempotency-ttl", server.DefaultIdempotencyTTL, "how long Idempotency-Key records are kept")
	cl.duration(&s.EventRetention, "event-retention", server.DefaultEventRetention,
		"how long events (and finished webhook deliveries) are kept")
	cl.float(&s.RatePerSecond, "rate-limit", server.DefaultRatePerSecond,
		"requests per second each credential may make, sustained; negative: no limit")
	cl.integer(&s.RateBurst, "rate-burst", server.DefaultRateBurst, "requests a credential may make at once")
	cl.float(&s.AuthFailuresPerSecond, "auth-failure-limit", server.DefaultAuthFailuresPerIP,
		"failed authentications per second allowed from one client address; negative: no limit")
	cl.integer(&s.AuthFailureBurst, "auth-failure-burst", server.DefaultAuthFailureBurst,
		"failed authentications one client address may make at once")
	cl.float(&s.ReportsPerSecond, "leak-report-limit", server.DefaultReportsPerIP,
		"reports of leaked credentials (POST /api/credentials/revoke) per second allowed from one client address; negative: no limit")
	cl.integer(&s.ReportBurst, "leak-report-burst", server.DefaultReportBurst,
		"reports of leaked credentials one client address may make at once")
	cl.string(&s.MetricsToken, "metrics-token", "",
		"bearer token GET /metrics requires; without one, /metrics answers loopback clients only")
	cl.integer(&s.CachedKeys, "cached-keys", keys.DefaultCachedKeys,
		"keys whose principal is kept in memory, least recently used evicted first; negative: none")
	cl.integer(&s.CachedTokens, "cached-tokens", keys.DefaultCachedTokens, "verified temporary tokens kept in memory")
	w := &s.Webhooks
	cl.boolean(&w.AllowPrivate, "webhook-allow-private",
		"let webhooks reach loopback, private, link-local and other non-public addresses, and use plain http")
	cl.duration(&w.PollInterval, "webhook-poll-interval", delivery.DefaultPollInterval, "how often the webhook outbox is polled")
	cl.duration(&w.Timeout, "webhook-timeout", delivery.DefaultTimeout, "timeout of one delivery attempt")
	cl.integer(&w.MaxAttempts, "webhook-max-attempts", delivery.DefaultMaxAttempts, "attempts before a delivery is failed")
	cl.duration(&w.BaseBackoff, "webhook-base-backoff", delivery.DefaultBaseBackoff,
		"ceiling of the random wait after the first failed attempt, doubled after each further one")
	cl.duration(&w.MaxBackoff, "webhook-max-backoff", delivery.DefaultMaxBackoff, "largest ceiling of a wait between attempts")
}

// serverConfig is the server's configuration from serve's settings.
func (c *config) serverConfig() (server.Config, error) {
	cfg := c.server
	if c.trustedProxies != "" {
		cfg.TrustedProxies = strings.Split(c.trustedProxies, ",")
	}
	if c.sunset != "" {
		t, err := time.Parse(time.DateOnly, c.sunset)
		if err != nil {
			return cfg, fmt.Errorf("--oldest-version-sunset %q: give a date as YYYY-MM-DD", c.sunset)
		}
		cfg.OldestVersionSunset = t
	}
	var err error
	cfg.Sealer, err = sealer(c.secretKeyFile)
	return cfg, err
}

// bootstrapKeyPath is where the bootstrap partner key is written.
func (c *config) bootstrapKeyPath() string {
	switch {
	case c.bootstrapKeyFile != "":
		return c.bootstrapKeyFile
	case migrations.IsPostgres(c.database):
		return filepath.Join("data", "bootstrap-partner-key")
	default:
		return filepath.Join(filepath.Dir(c.database), "bootstrap-partner-key")
	}
}

// A commandLine is one command's flag set with the settings it takes declared on it, their
// variables read through getenv.
type commandLine struct {
	config
	fs       *flag.FlagSet
	getenv   func(string) string
	err      error        // every malformed variable
	declared []*flag.Flag // the settings, in the order declared
}

// envVar is the variable of the setting whose flag is --name.
func envVar(name string) string {
	return "TENANTRY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// declare defines the flag, with the variable named in its help, then takes the variable's
// value, if set, in place of the default: the command line still wins, and -h shows the
// default, never the environment's value (which may be a secret). parse, not the flag's own
// parser, reads the variable, so that a malformed one is an error that says why.
func declare[T any](cl *commandLine, define func(*T, string, T, string), parse func(string) (T, error),
	p *T, name string, def T, help string) {
	env := envVar(name)
	define(p, name, def, help+" ("+env+")")
	cl.declared = append(cl.declared, cl.fs.Lookup(name))
	if v := cl.getenv(env); v != "" {
		x, err := parse(v)
		if err != nil {
			cl.err = errors.Join(cl.err, fmt.Errorf("%s=%q: %w", env, v, err))
			return
		}
		*p = x
	}
}

// argument declares a flag that is one command's argument (a name, an id), not a setting: it has
// no variable, and its help says so.
func (cl *commandLine) argument(name, def, help string) *string {
	return cl.fs.String(name, def, help+" (a flag only: no variable)")
}

func (cl *commandLine) string(p *string, name, def, help string) {
	declare(cl, cl.fs.StringVar, func(v string) (string, error) { return v, nil }, p, name, def, help)
}

func (cl *commandLine) duration(p *time.Duration, name string, def time.Duration, help string) {
	declare(cl, cl.fs.DurationVar, time.ParseDuration, p, name, def, help)
}

func (cl *commandLine) integer(p *int, name string, def int, help string) {
	declare(cl, cl.fs.IntVar, strconv.Atoi, p, name, def, help)
}

func (cl *commandLine) float(p *float64, name string, def float64, help string) {
	declare(cl, cl.fs.Float64Var, func(v string) (float64, error) { return strconv.ParseFloat(v, 64) }, p, name, def, help)
}

// boolean declares a setting that is off unless set.
func (cl *commandLine) boolean(p *bool, name, help string) {
	declare(cl, cl.fs.BoolVar, strconv.ParseBool, p, name, false, help)
}
