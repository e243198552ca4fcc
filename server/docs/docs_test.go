package docs

import (
	"strings"
	"testing"

	"github.com/tenantry/tenantry"
)

func TestRenderListsEveryOperation(t *testing.T) {
	html, err := Render(tenantry.Spec)
	if err != nil {
		t.Fatal(err)
	}
	ops := strings.Count(string(tenantry.Spec), "operationId:")
	if got := strings.Count(string(html), `class="operation"`); got != ops || ops < 50 {
		t.Fatalf("%d operations rendered, the spec has %d", got, ops)
	}
	if strings.Contains(string(html), "<script") || strings.Contains(string(html), "src=") || strings.Contains(string(html), "<link") {
		t.Fatalf("the page must need nothing from elsewhere and run no script")
	}
}
