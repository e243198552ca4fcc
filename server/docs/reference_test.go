package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/tenantry/tenantry"
)

// reference is Reference(tenantry.Spec), loaded back as OpenAPI.
func reference(t *testing.T) (*openapi3.T, []byte) {
	t.Helper()
	out, err := Reference(tenantry.Spec)
	if err != nil {
		t.Fatalf("Reference: %v", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(out)
	if err != nil {
		t.Fatalf("the reference is no OpenAPI document: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the reference does not validate: %v", err)
	}
	return doc, out
}

// sampleOf is the source of op's one curl sample.
func sampleOf(t *testing.T, doc *openapi3.T, method, path string) string {
	t.Helper()
	item := doc.Paths.Find(path)
	if item == nil || item.GetOperation(method) == nil {
		t.Fatalf("no %s %s in the reference", method, path)
	}
	samples, _ := item.GetOperation(method).Extensions["x-codeSamples"].([]any)
	if len(samples) != 1 {
		t.Fatalf("%s %s: %d code samples, want 1", method, path, len(samples))
	}
	s := samples[0].(map[string]any)
	if s["lang"] != "curl" || s["label"] != "curl" {
		t.Fatalf("%s %s: sample %v", method, path, s)
	}
	return s["source"].(string)
}

// The reference is the contract and nothing else but the samples and their introduction: the
// same document once those are taken out, in the same order (Redoc shows operations in the
// order of the document).
func TestReferenceIsTheContract(t *testing.T) {
	doc, out := reference(t)
	want, err := openapi3.NewLoader().LoadFromData(tenantry.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc.Info.Description, curlIntro) || strings.Replace(doc.Info.Description, curlIntro, "", 1) != want.Info.Description {
		t.Errorf("info.description should be the contract's with the samples' introduction added")
	}
	operations := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			sampleOf(t, doc, method, path)
			delete(op.Extensions, "x-codeSamples")
			operations++
		}
	}
	if n := strings.Count(string(tenantry.Spec), "operationId:"); operations != n {
		t.Errorf("the reference has %d operations, the contract %d", operations, n)
	}
	doc.Info.Description = want.Info.Description
	got, _ := json.Marshal(doc)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(got, wantJSON) {
		t.Errorf("the reference without its samples differs from the contract (%d bytes of JSON, want %d)", len(got), len(wantJSON))
	}
	// The order of the paths, and of the operations in one, is the contract's.
	var lastPath int
	for _, p := range []string{`"/api/me"`, `"/api/versions"`, `"/api/organizations"`, `"/api/organizations/{org_id}"`, `"/api/organization"`, `"/healthz"`, `"/docs"`} {
		i := bytes.Index(out, []byte(p+":{"))
		if i < lastPath {
			t.Errorf("path %s is out of the contract's order", p)
		}
		lastPath = i
	}
	if g, p := bytes.Index(out, []byte(`"operationId":"listOrganizations"`)), bytes.Index(out, []byte(`"operationId":"createOrganization"`)); g < 0 || p < g {
		t.Errorf("GET /api/organizations should come before its POST, as in the contract")
	}
	if bytes.Contains(out, []byte(`\u003c`)) {
		t.Errorf("the reference escapes < as \\u003c: it is JSON, not HTML")
	}
}

// The samples of a few operations, exactly: the method, $TENANTRY_URL, path parameters as shell
// variables, the bearer header unless public, and the body's example.
func TestCurlSamples(t *testing.T) {
	doc, _ := reference(t)
	for _, c := range []struct{ method, path, want string }{
		{"POST", "/api/organizations", "curl -X POST \"$TENANTRY_URL/api/organizations\" \\\n" +
			"  -H \"Authorization: Bearer $TENANTRY_KEY\" \\\n" +
			"  -H 'Content-Type: application/json' \\\n" +
			"  -d '{\n    \"name\": \"Acme Corp\",\n    \"issuer\": \"https://login.acme.example\",\n    \"client_id\": \"tenantry-acme\",\n" +
			"    \"client_secret\": \"s3cr3t-from-the-idp\",\n    \"sso_domain\": \"acme.example\",\n    \"sso_org_id\": \"org_8f2k1q\"\n  }'"},
		{"GET", "/api/versions", `curl "$TENANTRY_URL/api/versions"`},
		{"GET", "/api/organizations/{org_id}/users", "curl \"$TENANTRY_URL/api/organizations/$ORG_ID/users\" \\\n" +
			"  -H \"Authorization: Bearer $TENANTRY_KEY\""},
		{"DELETE", "/api/organizations/{org_id}/users/{id}", "curl -X DELETE \"$TENANTRY_URL/api/organizations/$ORG_ID/users/$ID\" \\\n" +
			"  -H \"Authorization: Bearer $TENANTRY_KEY\""},
		// Polytomic's takes no body; Tenantry's optional one is the sample's (a key policy may need it).
		{"POST", "/api/organizations/{org_id}/users/{id}/keys", "curl -X POST \"$TENANTRY_URL/api/organizations/$ORG_ID/users/$ID/keys\" \\\n" +
			"  -H \"Authorization: Bearer $TENANTRY_KEY\" \\\n" +
			"  -H 'Content-Type: application/json' \\\n" +
			"  -d '{\n    \"expires_at\": \"2035-01-01T00:00:00Z\",\n    \"allowed_cidrs\": [\n      \"10.1.0.0/16\",\n      \"127.0.0.1\"\n    ]\n  }'"},
		{"GET", "/healthz", `curl "$TENANTRY_URL/healthz"`},
		// A form body (RFC 7662's) is sent as a form, a parameter a line.
		{"POST", "/oauth/introspect", "curl -X POST \"$TENANTRY_URL/oauth/introspect\" \\\n" +
			"  -H \"Authorization: Bearer $TENANTRY_KEY\" \\\n" +
			"  --data-urlencode 'token=tuk_3kTMd9Qv0yX7bN2pL8sR4wZ6cF1hJ5gA0eU9iO3mK7q1a2B3c' \\\n" +
			"  --data-urlencode 'token_type_hint=access_token'"},
	} {
		if got := sampleOf(t, doc, c.method, c.path); got != c.want {
			t.Errorf("%s %s:\n%s\nwant:\n%s", c.method, c.path, got, c.want)
		}
	}
	// Every operation with a JSON body sends its example, as JSON; every one that is not
	// public sends the key.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			sample := sampleOf(t, doc, method, path)
			public := op.Security != nil && len(*op.Security) == 0
			if strings.Contains(sample, "Authorization: Bearer $TENANTRY_KEY") == public {
				t.Errorf("%s %s (public %v): %s", method, path, public, sample)
			}
			for _, p := range strings.Split(path, "/") {
				if strings.HasPrefix(p, "{") && !strings.Contains(sample, "$"+strings.ToUpper(strings.Trim(p, "{}"))) {
					t.Errorf("%s %s: %s is not a variable in %s", method, path, p, sample)
				}
			}
			if op.RequestBody == nil || op.RequestBody.Value.Content.Get("application/json") == nil {
				continue
			}
			_, data, ok := strings.Cut(sample, " -d '")
			if !ok || !json.Valid([]byte(strings.TrimSuffix(data, "'"))) {
				t.Errorf("%s %s: no JSON body: %s", method, path, sample)
			}
		}
	}
}

// A sample is shell-quoted: bash, running it with curl replaced by a function that prints its
// arguments, passes the body and the URL as they are meant, quotes and dollars included.
func TestCurlSampleQuoting(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	body := []byte(`{"name":"O'Brien's \"$HOME\" ` + "`id`" + ` \\ co","n":1}`)
	sample := CurlSample("POST", "/api/things/{thing_id}/{id}x", true, body, false)
	script := `curl() { for a in "$@"; do printf '%s\0' "$a"; done; }` + "\nTENANTRY_URL=http://127.0.0.1:1 TENANTRY_KEY=k THING_ID=t1 ID=i2\n" + sample
	out, err := exec.Command(bash, "-c", script).Output()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, sample)
	}
	args := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	want := []string{"-X", "POST", "http://127.0.0.1:1/api/things/t1/i2x", "-H", "Authorization: Bearer k", "-H", "Content-Type: application/json", "-d"}
	if len(args) != len(want)+1 || strings.Join(args[:len(want)], "|") != strings.Join(want, "|") {
		t.Fatalf("curl got %q\nfrom:\n%s", args, sample)
	}
	var sent, meant any
	if err := json.Unmarshal([]byte(args[len(want)]), &sent); err != nil {
		t.Fatalf("the body sent is no JSON: %q", args[len(want)])
	}
	json.Unmarshal(body, &meant)
	if g, _ := json.Marshal(sent); string(g) != string(must(json.Marshal(meant))) {
		t.Fatalf("body sent %s, want %s", g, body)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// What JSON cannot say fails, rather than serve a reference that is not the contract.
func TestReferenceRefusesWhatJSONCannotSay(t *testing.T) {
	for name, spec := range map[string]string{
		"infinity":          "openapi: 3.0.3\npaths: {}\nx-n: .inf\n",
		"non-string key":    "openapi: 3.0.3\npaths: {}\nx-m: {[1, 2]: a}\n",
		"body, no example":  "openapi: 3.0.3\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: {type: object}\n",
		"$ref to nothing":   "openapi: 3.0.3\npaths:\n  /a:\n    post:\n      requestBody:\n        $ref: '#/components/requestBodies/None'\n",
		"not a mapping":     "- a\n",
		"no paths":          "openapi: 3.0.3\n",
		"merge keys":        "openapi: 3.0.3\npaths: {}\nx-a: &a {b: 1}\nx-c: {<<: *a}\n",
		"not YAML":          "openapi: [\n",
		"external $ref":     "openapi: 3.0.3\npaths:\n  /a:\n    post:\n      requestBody:\n        $ref: 'other.yaml#/x'\n",
		"example not JSON?": "openapi: 3.0.3\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            example: {n: .nan}\n",
	} {
		t.Run(name, func(t *testing.T) {
			out, err := Reference([]byte(spec))
			if err == nil {
				t.Fatalf("accepted: %s", out)
			}
			t.Log(err)
		})
	}
}
