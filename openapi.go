// Package tenantry is the API contract, openapi.yaml, embedded from the one copy beside this
// file (Go embeds no file above its package, hence a package at the repository's root). The
// server serves and renders it; the tests check every response against it.
package tenantry

import _ "embed"

// Spec is openapi.yaml as it is in the repository.
//
//go:embed openapi.yaml
var Spec []byte
