package keys

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/tenantry/tenantry/tenants"
)

// The cache holds at most its size, and an entry costs what the README says (about 600 bytes
// a key, 1 KB a token), so a million distinct keys do not grow the process without bound.
func TestPrincipalCacheIsBounded(t *testing.T) {
	const size = 10_000
	c := newPrincipalCache(size, size)
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	start := heap()
	for i := range 3 * size {
		id := fmt.Sprintf("01a23592-b839-7d24-8213-%012d", i)
		c.putKey("h"+id, &cachedKey{p: tenants.Principal{Kind: tenants.KindUser, ParentKind: tenants.KindUser, KeyID: id, PartnerID: id,
			OrgID: id, UserID: id, Permissions: tenants.AllPermissions, APIVersion: tenants.LatestVersion,
			SecretID: "zWELRRSqbgtg3NZgf5iCGBchBmaBhrgJwx33VUUhfyY", OrgName: "Customer organization " + id[:8],
			Email: "someone.of-average-length@customer-" + id[:8] + ".example", LegacyRole: "user"}})
	}
	keys := heap()
	for i := range 3 * size {
		id := fmt.Sprintf("01a23592-b839-7d24-8213-%012d", i)
		token := fmt.Sprintf("eyJhbGciOiJFZERTQSIsImtpZCI6IjAxYTIzNTkwLTJhOTQtNzYzMy04ZjQ2LWZmNzFlZmI2ZTIyMSIsInR5cCI6IkpXVCJ9.%0480d.%086d", i, i)
		c.putToken(token, &cachedToken{claims: tokenClaims{Parent: id, ParentValue: "zWELRRSqbgtg3NZgf5iCGBchBmaBhrgJwx33VUUhfyY", Org: id, Partner: id},
			until: time.Now().Add(time.Hour)})
	}
	tokens := heap()
	if c.keys.Len() != size || c.tokens.Len() != size {
		t.Fatalf("the cache holds %d keys and %d tokens, past its size %d", c.keys.Len(), c.tokens.Len(), size)
	}
	perKey, perToken := float64(keys-start)/size, float64(tokens-keys)/size
	t.Logf("a cached key costs %.0f bytes, a cached token %.0f", perKey, perToken)
	if perKey > 800 || perToken > 1200 {
		t.Fatalf("a cached key costs %.0f bytes and a token %.0f, more than the README's 800 and 1,200", perKey, perToken)
	}
}
