package tenants

import "slices"

// Versions are the API versions (Polytomic's), oldest first. An organization is pinned to one
// (its api_version); the differences between them are the server's registry of changes.
var Versions = []string{"2021-05-23", "2022-12-12", "2023-04-25", "2024-02-08", "2025-09-18"}

// LatestVersion is what new organizations are pinned to and what serves anonymous requests.
var LatestVersion = Versions[len(Versions)-1]

// IsVersion reports whether v is a supported version.
func IsVersion(v string) bool { return slices.Contains(Versions, v) }
