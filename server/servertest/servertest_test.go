package servertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// recorder is a testing.TB that keeps the errors a check reports instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper() {}

// The checker itself must catch responses that break the contract, or every test built on it
// proves nothing.
func TestCheckCatchesContractBreaks(t *testing.T) {
	const identity = `{"data":{"organization_id":"01a20968-8ef6-7e38-8bdc-f972e01190c1","organization_name":"A",` +
		`"is_partner":true,"is_user":false,"is_organization":false,"is_system":false,"kind":"partner",` +
		`"partner_id":"01a20968-8ef6-7d8b-b415-96307a96ddb0","key_id":"01a20968-8ef6-7d8b-b415-96307a96ddb1",` +
		`"permissions":[],"expires_at":null}}`
	cases := []struct {
		name    string
		status  int
		version string
		body    string
		ok      bool
	}{
		{"valid", 200, "2025-09-18", identity, true},
		{"missing required field", 200, "2025-09-18", `{"data":{"organization_id":"x"}}`, false},
		{"undeclared status", 418, "2025-09-18", `{"status":418,"key":"teapot","message":"m","metadata":{}}`, false},
		{"no version header", 200, "", identity, false},
		{"error without metadata", 401, "2025-09-18", `{"status":401,"key":"missing_token","message":"m"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.version != "" {
					w.Header().Set("X-Polytomic-Version", tc.version)
				}
				w.Header().Set("X-Request-Id", "r1")
				w.Header().Set("WWW-Authenticate", `Bearer realm="tenantry"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer ts.Close()
			rec := &recorder{TB: t}
			New(rec, ts.URL).Do("GET", "/api/me", nil)
			if ok := len(rec.errs) == 0; ok != tc.ok {
				t.Fatalf("check passed=%v, want %v; errors: %v", ok, tc.ok, rec.errs)
			}
		})
	}
}
