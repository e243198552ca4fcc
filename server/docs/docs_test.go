package docs

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The embedded copy is the repository's openapi.yaml: the binary serves the real contract.
func TestEmbeddedSpecIsCurrent(t *testing.T) {
	top, err := os.ReadFile("../../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(top, Spec) {
		t.Fatalf("server/docs/openapi.yaml differs from openapi.yaml: run `go generate ./server/docs`")
	}
}

func TestRenderListsEveryOperation(t *testing.T) {
	html, err := Render(Spec)
	if err != nil {
		t.Fatal(err)
	}
	ops := strings.Count(string(Spec), "operationId:")
	if got := strings.Count(string(html), `class="operation"`); got != ops || ops < 50 {
		t.Fatalf("%d operations rendered, the spec has %d", got, ops)
	}
	if strings.Contains(string(html), "<script") || strings.Contains(string(html), "src=") || strings.Contains(string(html), "<link") {
		t.Fatalf("the page must need nothing from elsewhere and run no script")
	}
}
