package server

import (
	"slices"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/server/servertest"
)

// openapi.yaml's POST /api lists exactly the route table's commands, and a command takes as
// query parameters exactly those its route's operation declares.
func TestCommandsMatchSpec(t *testing.T) {
	doc := servertest.Spec(t)
	var names []string
	for _, r := range (&Server{}).routes() {
		if r.command.name == "" {
			continue
		}
		names = append(names, r.command.name)
		_, path, _ := strings.Cut(Route{r.method, r.path}.String(), " ")
		item := doc.Paths.Value(path)
		if item == nil || item.GetOperation(r.method) == nil {
			t.Fatalf("command %s: openapi.yaml has no %s %s", r.command.name, r.method, path)
		}
		var query []string
		for _, p := range append(item.Parameters, item.GetOperation(r.method).Parameters...) {
			if p.Value.In == "query" {
				query = append(query, p.Value.Name)
			}
		}
		if !slices.Equal(query, r.command.query) {
			t.Errorf("command %s takes query parameters %v; openapi.yaml gives %s %s %v", r.command.name, r.command.query, r.method, path, query)
		}
	}
	var enum []string
	for _, v := range doc.Components.Schemas["CommandRequest"].Value.Properties["command"].Value.Enum {
		enum = append(enum, v.(string))
	}
	slices.Sort(names)
	if !slices.Equal(enum, names) {
		t.Fatalf("openapi.yaml's commands %v; the route table's %v", enum, names)
	}
}
