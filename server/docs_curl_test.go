package server_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/server/docs"
)

// curlSamples are the curl samples of the reference a server serves (GET /docs/openapi.json),
// by operationId.
func curlSamples(t *testing.T, e *env) map[string]string {
	t.Helper()
	r := e.anon.Do("GET", docs.ReferencePath, nil)
	expect(t, r, 200, "")
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatal(err)
	}
	samples := map[string]string{}
	for _, item := range doc.Paths {
		for method, raw := range item {
			var op struct {
				OperationID string                                 `json:"operationId"`
				Samples     []struct{ Lang, Label, Source string } `json:"x-codeSamples"`
			}
			if method == "parameters" || strings.HasPrefix(method, "x-") {
				continue
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
			for _, s := range op.Samples {
				if s.Lang == "curl" {
					samples[op.OperationID] = s.Source
				}
			}
		}
	}
	return samples
}

// The curl samples /docs shows work: bash runs them, as served, against a server on loopback,
// with only the variables they name set (set -u fails a sample that names another), and what
// they did is there: the organization of createOrganization's example, its user, its key.
func TestCurlSamplesRun(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is missing")
		}
		t.Skip("curl is not installed")
	}
	e := newEnv(t)
	samples := curlSamples(t, e)
	home := t.TempDir() // no ~/.curlrc of the machine's
	run := func(operation string, vars ...string) map[string]any {
		t.Helper()
		sample, ok := samples[operation]
		if !ok {
			t.Fatalf("no curl sample for %s", operation)
		}
		cmd := exec.Command(bash, "-c", "set -eu\n"+sample)
		// Nothing of this process's environment but PATH: no proxy, and no variable the
		// sample would not say it needs.
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TENANTRY_URL=" + e.url}, vars...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s\n%s", operation, err, sample, stderr.String())
		}
		var body map[string]any
		if err := json.Unmarshal(out, &body); err != nil {
			t.Fatalf("%s answered no JSON object: %s\n%s", operation, out, sample)
		}
		if _, ok := body["data"]; !ok {
			t.Fatalf("%s failed: %s\n%s", operation, out, sample)
		}
		t.Logf("%s ran in %s:\n%s", operation, time.Since(start).Round(time.Millisecond), sample)
		return body
	}
	key := "TENANTRY_KEY=" + e.partner.Key

	// A public operation needs no key: TENANTRY_KEY is not even set.
	if versions, _ := run("listVersions")["data"].(map[string]any); versions == nil {
		t.Errorf("listVersions: no versions")
	}
	org := run("createOrganization", key)["data"].(map[string]any)
	orgID, _ := org["id"].(string)
	if org["name"] != "Acme Corp" || orgID == "" {
		t.Fatalf("createOrganization made %v", org)
	}
	listed := run("listOrganizations", key)["data"].([]any)
	if !strings.Contains(mustString(json.Marshal(listed)), orgID) {
		t.Errorf("listOrganizations does not list %s: %v", orgID, listed)
	}
	if got := run("getOrganization", key, "ORG_ID="+orgID)["data"].(map[string]any); got["id"] != orgID {
		t.Errorf("getOrganization: %v", got)
	}
	user := run("createUser", key, "ORG_ID="+orgID)["data"].(map[string]any)
	userID, _ := user["id"].(string)
	if userID == "" || user["organization_id"] != orgID {
		t.Fatalf("createUser made %v", user)
	}
	minted := run("createUserApiKey", key, "ORG_ID="+orgID, "ID="+userID)["data"].(map[string]any)
	userKey, _ := minted["value"].(string)
	if me := run("getIdentity", "TENANTRY_KEY="+userKey)["data"].(map[string]any); !strings.Contains(mustString(json.Marshal(me)), userID) {
		t.Errorf("getIdentity with the minted key: %v", me)
	}
	// And what the samples did is what the API holds.
	got := e.partner.Do("GET", "/api/organizations/"+orgID+"/users/"+userID, nil)
	expect(t, got, 200, "")
	if got.Data()["email"] != user["email"] {
		t.Errorf("the user the sample made: %s", got.Body)
	}
}

func mustString(b []byte, err error) string {
	if err != nil {
		panic(err)
	}
	return string(b)
}
