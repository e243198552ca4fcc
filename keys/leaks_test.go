package keys_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/keys"
	"github.com/tenantry/tenantry/tenants"
)

// A reported value that is not the shape of a key (its prefix, length, alphabet, checksum) is
// skipped without touching the database: on a closed database, a report of such values
// succeeds, while one well-formed value fails it.
func TestReportedMalformedValuesAreNotLookedUp(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	svc := keys.NewService(db)
	_, value := userKey(t, svc)
	last := map[bool]string{true: "b", false: "a"}[value[len(value)-1] == 'a']
	malformed := []string{
		value[:len(value)-1] + last,         // a typo in the checksum
		"tuk_" + value[4:8] + value[9:],     // a character missing
		"tsk_" + value[4:],                  // another prefix
		strings.Replace(value, "_", "-", 1), // not the prefix
		value + "0",                         // too long
		"",                                  // nothing
		strings.Repeat("x", 5000),           // far too long
	}
	db.Close()
	report, err := svc.RevokeReported(ctx, malformed)
	if err != nil || report.Malformed != len(malformed) {
		t.Fatalf("a report of malformed values on a closed database: %+v, %v", report, err)
	}
	if _, err := svc.RevokeReported(ctx, append(malformed, value)); err == nil {
		t.Fatalf("a well-formed value was not looked up: the test cannot tell")
	}
	if _, err := svc.RevokeReported(ctx, nil); !errors.Is(err, tenants.ErrInvalid) {
		t.Fatalf("an empty report: %v", err)
	}
	if _, err := svc.RevokeReported(ctx, make([]string, keys.MaxReportedCredentials+1)); !errors.Is(err, tenants.ErrInvalid) {
		t.Fatalf("a report of %d values: %v", keys.MaxReportedCredentials+1, err)
	}
}

// The README tells secret scanners how to recognise Tenantry's credentials, with a regular
// expression for keys and one for tokens. They match every kind of credential the server
// mints (partner, user and organization keys, a rotated key's new value, a token), found
// alone or in text, and none of the near misses.
func TestREADMERecognisesEveryKey(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?m)^```regex\n(.+)\n```$").FindAllStringSubmatch(string(raw), -1)
	if len(blocks) != 2 {
		t.Fatalf("the README has %d ```regex blocks, want 2 (keys, tokens)", len(blocks))
	}
	keyPattern, tokenPattern := regexp.MustCompile(blocks[0][1]), regexp.MustCompile(blocks[1][1])

	ctx := context.Background()
	svc := keys.NewService(openDB(t))
	var partnerKey string
	if _, err := svc.CreatePartner(ctx, "Scanned", func(v string) error { partnerKey = v; return nil }); err != nil {
		t.Fatal(err)
	}
	p, userValue := userKey(t, svc)
	orgKey, err := svc.CreateKey(ctx, p, keys.KeyInput{Name: "widget", Kind: tenants.KindOrganization, Role: tenants.OrgRoleAsker})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := svc.RotateKey(ctx, p, orgKey.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	token, err := svc.MintToken(ctx, p, keys.TokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	minted := map[string]string{"partner key": partnerKey, "user key": userValue, "organization key": orgKey.Value,
		"rotated value": rotated.Value}
	for name, v := range minted {
		for _, text := range []string{v, "TENANTRY_KEY=" + v + "\n", `{"key":"` + v + `"}`, "Authorization: Bearer " + v} {
			if got := keyPattern.FindString(text); got != v {
				t.Errorf("the README's key pattern finds %q in %q, a %s", got, text, name)
			}
		}
		if tokenPattern.MatchString(v) {
			t.Errorf("the token pattern matches a %s", name)
		}
	}
	if got := tokenPattern.FindString("Authorization: Bearer " + token.Token + "\n"); got != token.Token {
		t.Errorf("the README's token pattern finds %q in a header carrying a token", got)
	}
	if keyPattern.MatchString(token.Token) {
		t.Errorf("the key pattern matches a token")
	}
	v := userValue
	for name, miss := range map[string]string{
		"another prefix":        "tsk_" + v[4:],
		"a prefix in capitals":  "TUK_" + v[4:],
		"a character short":     v[:len(v)-1],
		"a character over":      v + "x",
		"a word before":         "mytuk_" + v[4:],
		"not base62":            v[:10] + "-" + v[11:],
		"a dash for the _":      "tuk-" + v[4:],
		"a key run into a word": v + "_suffix",
	} {
		if found := keyPattern.FindString(miss); found != "" {
			t.Errorf("the key pattern finds %q in a near miss (%s): %q", found, name, miss)
		}
	}
}

// Every exported method of the credentials service that acts on credentials without a
// Principal says here who calls it and why it needs none; the ones that take a Principal decide
// themselves what it may do (as TestEveryDomainMethodAuthorizes checks for the domain's
// Store). A new method without a Principal fails this test until it is listed.
func TestServiceMethodsWithoutPrincipal(t *testing.T) {
	without := map[string]string{
		"RevokeReported":     "anyone, unauthenticated: holding a credential's value is the authority to end it (GitHub's credential revocation API)",
		"Authenticate":       "the middleware: it is what turns a value into a Principal",
		"CreatePartner":      "the operator (tenantry partner create)",
		"IssuePartnerKey":    "the operator (tenantry partner issue-key)",
		"Bootstrap":          "the server's first start, for the operator",
		"RotateSigningKey":   "the operator (tenantry signing-key rotate)",
		"EnsureSigningKey":   "the server's start",
		"WarnExpiring":       "the server's sweeper: Tenantry itself, the actor system",
		"JWKS":               "anyone: public keys",
		"CachePrincipals":    "the server's set-up",
		"FollowReplicas":     "the server's set-up",
		"StartUsageRecorder": "the server's set-up",
		"FlushUsage":         "the server's shutdown and tests",
		"Close":              "the server's shutdown",
		"In":                 "binds the service to a unit of work",
		"Work":               "runs a unit of work (tenants.Conn)",
		"Write":              "runs a transaction (tenants.Conn)",
		"Reader":             "where a read runs (tenants.Conn)",
	}
	principal := reflect.TypeOf(&tenants.Principal{})
	svc := reflect.TypeOf(&keys.Service{})
	for i := range svc.NumMethod() {
		m := svc.Method(i)
		takes := false
		for j := 1; j < m.Type.NumIn(); j++ {
			takes = takes || m.Type.In(j) == principal
		}
		if !takes && without[m.Name] == "" {
			t.Errorf("keys.Service.%s takes no Principal: say here who may call it, or make it take one and decide", m.Name)
		}
		if takes && without[m.Name] != "" {
			t.Errorf("keys.Service.%s takes a Principal: remove it from the list", m.Name)
		}
	}
}
