package server

import (
	"net/http"
	"testing"

	"github.com/tenantry/tenantry/tenants"
)

// The Authorization parser alone, on header values as Go's HTTP server hands them over (it
// strips the spaces and tabs around a value and joins folded lines with a space);
// TestAuthorizationHeaderSyntax drives the same cases through a real server.
func TestBearerCredential(t *testing.T) {
	const key = "tuk_0123456789abcdefghijABCDEFGHIJ0123456789abcdefg"
	const jwt = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-_"
	cases := []struct {
		name   string
		values []string // nil: no header
		value  string
		err    error
	}{
		{"no header", nil, "", nil},
		{"an empty header", []string{""}, "", nil},
		{"Bearer alone", []string{"Bearer"}, "", nil},
		{"Bearer, a space, a key", []string{"Bearer " + key}, key, nil},
		{"Bearer, a tab, a key", []string{"Bearer\t" + key}, key, nil},
		{"a token", []string{"Bearer " + jwt}, jwt, nil},
		{"a token68 with padding", []string{"Bearer abc+/=="}, "abc+/==", nil},
		{"the scheme in any case", []string{"BEARER " + key}, key, nil},
		{"two headers", []string{"Bearer " + key, "Bearer " + key}, "", errMalformedAuthorization},
		{"two headers, one empty", []string{"Bearer " + key, ""}, "", errMalformedAuthorization},
		{"two spaces", []string{"Bearer  " + key}, "", errMalformedAuthorization},
		{"a space and a tab", []string{"Bearer \t" + key}, "", errMalformedAuthorization},
		{"a space after the key: a folded line", []string{"Bearer " + key + " "}, "", errMalformedAuthorization},
		{"Bearer and a space: a folded line", []string{"Bearer "}, "", errMalformedAuthorization},
		{"two credentials", []string{"Bearer " + key + " " + key}, "", errMalformedAuthorization},
		{"a comma", []string{"Bearer " + key + ","}, "", errMalformedAuthorization},
		{"a no-break space as the separator", []string{"Bearer\u00a0" + key}, "", errMalformedAuthorization},
		{"a no-break space before the key", []string{"Bearer \u00a0" + key}, "", errMalformedAuthorization},
		{"an em space after the key", []string{"Bearer " + key + "\u2003"}, "", errMalformedAuthorization},
		{"an ideographic space after the key", []string{"Bearer " + key + "\u3000"}, "", errMalformedAuthorization},
		{"a leading space", []string{" Bearer " + key}, "", errMalformedAuthorization},
		{"Basic", []string{"Basic dXNlcjpwYXNz"}, "", errNotBearer},
		{"Token", []string{"Token " + key}, "", errNotBearer},
		{"a key without a scheme", []string{key}, "", errNotBearer},
		{"Bearer run into the key", []string{"Bearer" + key}, "", errNotBearer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.values {
				h.Add("Authorization", v)
			}
			value, err := bearerCredential(h)
			if value != tc.value || err != tc.err {
				t.Fatalf("bearerCredential(%q) = %q, %v; want %q, %v", tc.values, value, err, tc.value, tc.err)
			}
			if err != nil && (err.(*tenants.Error).Key != "invalid_token") {
				t.Fatalf("key %q, want invalid_token", err.(*tenants.Error).Key)
			}
		})
	}
}

// The parser runs on every authenticated request: it must cost next to nothing beside the
// principal cache's lookup.
func BenchmarkBearerCredential(b *testing.B) {
	h := http.Header{"Authorization": {"Bearer tuk_0123456789abcdefghijABCDEFGHIJ0123456789abcdefg"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bearerCredential(h); err != nil {
			b.Fatal(err)
		}
	}
}
