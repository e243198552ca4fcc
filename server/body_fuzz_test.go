package server

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
)

// strictTarget is a request type a handler decodes, started as the handler starts it.
type strictTarget struct {
	name  string
	fresh func() any
}

// strictTargets are the handlers' request types, picked for what their fields test: strings,
// slices of strings and of structs, pointers to structs (nested), a free-form configuration
// (json.RawMessage) and map (role_vars), integers and booleans, the command envelope, and
// PATCH bodies merged into the resource as it is (decodePatch).
var strictTargets = []strictTarget{
	{"verify", func() any { return new(verifyRequest) }},
	{"provision", func() any { return new(provisionRequest) }},
	{"provision batch", func() any { return new(provisionBatchRequest) }},
	{"organization", func() any { return new(organizationRequest) }},
	{"user", func() any { return new(userRequest) }},
	{"connection", func() any { return new(connectionRequest) }},
	{"token", func() any { return new(tokenRequest) }},
	{"key", func() any { return new(keyRequest) }},
	{"key policy", func() any { return new(keyPolicyRequest) }},
	{"policy", func() any { return new(policyRequest) }},
	{"command", func() any { return new(commandRequest) }},
	{"patch organization", func() any {
		return &organizationRequest{Name: "Acme", Issuer: "https://idp.example", ClientID: "client", SSODomain: "acme.example"}
	}},
	{"patch user", func() any { return &userRequest{Email: "old@example.com", RoleIDs: []string{"r1", "r2"}} }},
	{"patch role", func() any { return &roleRequest{Name: "viewer", Actions: []string{"datasets:read", "keys:read"}} }},
}

// FuzzStrictDecoding checks what unmarshalStrict's fast path rests on: a body it accepts, the
// explaining path (encoding/json and the key walk, the decoder before it) accepts too, and
// decodes to the same value, for every request type above. A body the fast path refuses is
// the explaining path's to decide, so unmarshalStrict must answer exactly what that path
// answers on a fresh value, whatever the fast path left in dst before it stopped.
// `go test -run '^$' -fuzz '^FuzzStrictDecoding$' ./server/` explores further.
func FuzzStrictDecoding(f *testing.F) {
	for _, s := range strictSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// As unmarshalStrict does before either path.
		if body = bytes.TrimSpace(body); len(body) == 0 || body[0] != '{' {
			return
		}
		for _, tg := range strictTargets {
			fast, old := tg.fresh(), tg.fresh()
			fastErr := jsonv2.Unmarshal(body, fast, strictJSON)
			oldErr := explainRefusal(body, old)
			if fastErr == nil {
				if oldErr != nil {
					t.Fatalf("%s: the fast path accepts %q, the explaining path refuses it: %v", tg.name, body, oldErr)
				}
				if !reflect.DeepEqual(fast, old) {
					t.Fatalf("%s: %q decodes to %+v on the fast path, %+v on the explaining path", tg.name, body, fast, old)
				}
				continue
			}
			got := tg.fresh()
			if err := unmarshalStrict(body, got); !reflect.DeepEqual(err, oldErr) || oldErr == nil && !reflect.DeepEqual(got, old) {
				t.Fatalf("%s: after the fast path refused %q (%v), unmarshalStrict answers %v with %+v, the explaining path %v with %+v",
					tg.name, body, fastErr, err, got, oldErr, old)
			}
		}
	})
}

// strictSeeds are bodies where two JSON decoders are likely to part: names (case, escapes,
// repeats at any depth), nulls, numbers, strings, structure, and free-form values.
func strictSeeds() []string {
	seeds := []string{
		// Names.
		`{"key":"k","require":["keys:read"]}`, `{"Key":"k"}`, `{"KEY":"k"}`, `{"\u212aey":"k"}`, `{"ke\u0079":"k"}`,
		`{"key":"a","key":"b"}`, `{"key":"a","ke\u0079":"b"}`, `{"name":"a","na\u006de":"b"}`, `{"na\u006de":"n"}`,
		`{"name":"a","Name":"b"}`, `{"email":"a@example.com","role_ids":["r"],"role_ids":[]}`,
		`{"organization":{"name":"a","name":"b"}}`, `{"organization":{"name":"a"},"organization":{"issuer":"i"}}`,
		`{"items":[{"user":{"email":"a","email":"b"}}]}`, `{"items":[{"user":{"email":"a"}},{"user":{"Email":"b"}}]}`,
		`{"policy_actions":[{"action":"a","action":"b"}]}`, `{"user_profile":{"name":"n","name":"m"}}`,
		`{"key":"k","extra":1}`, `{"organization":{"nmae":"x"}}`, `{"key":{"a":1}}`, `{"key":{}}`, `{"":1}`,
		`{"key":"k","\u0000":1}`, `{"command":"list_roles","params":{}}`, `{"Command":"list_roles"}`,
		// Nulls, on strings, slices, maps, pointers, raw values, numbers and booleans.
		`{"key":null}`, `{"require":null}`, `{"require":[null]}`, `{"scopes":[null,"a"]}`, `{"organization":null}`,
		`{"organization":null,"user":{"email":null}}`, `{"items":[null]}`, `{"items":null}`, `{"policy_actions":[null]}`,
		`{"role_vars":null}`, `{"role_vars":{"a":null}}`, `{"configuration":null}`, `{"policies":null}`,
		`{"policies":[null]}`, `{"token_ttl":null}`, `{"user_profile":null}`, `{"max_lifetime_seconds":null}`,
		`{"require_expiry":null}`, `{"role_ids":null}`, `{"email":null}`, `{"actions":null}`, `{"params":null}`,
		`{"expires_at":null}`, `{"name":null,"actions":["a"]}`,
		// Numbers.
		`{"max_lifetime_seconds":"60"}`, `{"max_lifetime_seconds":1e2}`, `{"max_lifetime_seconds":1E+2}`,
		`{"max_lifetime_seconds":1.0}`, `{"max_lifetime_seconds":1.5}`, `{"max_lifetime_seconds":-0}`,
		`{"max_lifetime_seconds":-0.0}`, `{"max_lifetime_seconds":9223372036854775807}`,
		`{"max_lifetime_seconds":9223372036854775808}`, `{"max_lifetime_seconds":-9223372036854775808}`,
		`{"max_lifetime_seconds":-9223372036854775809}`, `{"max_lifetime_seconds":01}`, `{"max_lifetime_seconds":+1}`,
		`{"max_lifetime_seconds":.5}`, `{"max_lifetime_seconds":1.}`, `{"max_lifetime_seconds":0x10}`,
		`{"max_lifetime_seconds":Infinity}`, `{"max_lifetime_seconds":NaN}`, `{"token_ttl":1e2}`, `{"token_ttl":0}`,
		`{"token_ttl":-1}`, `{"token_ttl":99999999999999999999}`, `{"token_ttl":"5"}`, `{"require_expiry":"true"}`,
		`{"require_expiry":1}`, `{"require_expiry":True}`, `{"key":1}`, `{"require":[1]}`, `{"configuration":1e999}`,
		`{"configuration":-0}`, `{"configuration":-0.0e-0}`, `{"role_vars":{"a":1}}`, `{"kind":5}`,
		// Strings.
		`{"key":"\ud800"}`, `{"key":"\udc00\ud800"}`, `{"key":"\ud83d\ude00"}`, `{"key":"\ud83d"}`, `{"key":"\ud83dx"}`,
		"{\"key\":\"\xff\"}", "{\"key\":\"\xed\xa0\x80\"}", "{\"key\":\"\xc0\xaf\"}", "{\"ke\xffy\":\"k\"}",
		`{"key":"a\u0000b"}`, "{\"key\":\"a\tb\"}", "{\"key\":\"a\x7fb\"}", `{"key":"\/\b\f\n\r\t\"\\"}`, `{"key":"\x"}`,
		`{"key":"\u00"}`, `{"key":"\U0041"}`, `{"role_vars":{"\ud800":"v"}}`, `{"role_vars":{"a":"\udfff"}}`,
		`{"\ud800":1}`, `{"key":"` + "\u2028\u2029" + `"}`,
		// Structure: around the object, and of the wrong kind inside it.
		"\xef\xbb\xbf{\"key\":\"k\"}", `{"key":"a"}{}`, `{"key":"a"} x`, `{"key":"a"}]`, "{\"key\":\"a\"}\x00",
		`{"key":"a"`, `{`, `{}`, ` { } `, `{"key":"a",}`, `{,}`, `{"key" "a"}`, `{'key':'a'}`, `{key:"a"}`,
		"{\n\t\"key\" :\r\"a\" ,\"require\":[ ]\n}\n", "\u00a0{\"key\":\"a\"}\u00a0", "\v{\"key\":\"a\"}\f",
		`{"organization":[]}`, `{"organization":"acme"}`, `{"items":{}}`, `{"items":[[]]}`, `{"role_vars":[]}`,
		`{"role_vars":"a=b"}`, `{"user_profile":"x"}`, `{"policy_actions":[{"action":"a","role_ids":"r"}]}`,
		`{"require":"keys:read"}`, `{"require":{}}`, `{"require":[]}`, `{"scopes":[],"role_vars":{}}`, `{"key":[]}`,
		`{"key":{}}`, `{"key":true}`, `{"email":["a"]}`,
		// Free-form values (a connection's configuration, a command's params, a token's role_vars).
		`{"name":"c","type":"postgres","configuration":{"host":"db","port":5432}}`,
		`{"configuration":{"a":1,"a":2}}`, `{"configuration":{"a":{"b":1,"b":2}}}`, `{"configuration":[{"a":1,"a":1}]}`,
		`{"configuration": { "a" : [ 1 , 2 ] } }`, "{\"configuration\":{\n\"a\":\t1}}", `{"configuration":"\ud800"}`,
		`{"configuration":{"\ud800":1}}`, `{"configuration":"\u0041"}`, `{"configuration":[]}`, `{"configuration":"s"}`,
		`{"configuration":true}`, `{"configuration":{"Name":1,"name":2}}`, `{"configuration":{}}`,
		`{"configuration":{"a":1},"configuration":{"b":2}}`, `{"params":{"a":1,"a":2}}`, `{"command":"x","params":[]}`,
		`{"command":"create_organization","params":{"name":"a","name":"b"}}`, `{"role_vars":{"a":"1","a":"2"}}`,
		`{"role_vars":{"A":"1","a":"2"}}`, `{"role_vars":{"a":"1","b":"2"},"token_ttl":60,"scopes":["s"]}`,
		`{"name":"n","policies":["p"],"policies":[]}`, `{"name":"n","policies":[]}`,
	}
	// Nesting at both decoders' limit of 10000 levels (the body's own included), and one past
	// it: the fast path must not go deeper.
	deep := func(left, right string, depth int) string {
		return strings.Repeat(left, depth) + "1" + strings.Repeat(right, depth)
	}
	return append(seeds, `{"configuration":`+deep("[", "]", 9999)+`}`, `{"configuration":`+deep("[", "]", 10000)+`}`,
		`{"configuration":`+deep(`{"a":`, "}", 10000)+`}`, `{"require":`+deep("[", "]", 10000)+`}`)
}
