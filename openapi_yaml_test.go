package tenantry_test

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	tenantry "github.com/tenantry/tenantry"
)

// Inside a flow list ([a, b]) a plain scalar holding a colon (users:read) is read as a mapping
// by some YAML parsers that client generators use: every such scalar of openapi.yaml is quoted.
func TestFlowListScalarsWithColonsAreQuoted(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal(tenantry.Spec, &doc); err != nil {
		t.Fatal(err)
	}
	flowLists := 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.SequenceNode && n.Style&yaml.FlowStyle != 0 {
			flowLists++
			for _, item := range n.Content {
				if item.Kind == yaml.ScalarNode && item.Style == 0 && strings.Contains(item.Value, ":") {
					t.Errorf("openapi.yaml line %d: quote %s in its flow list", item.Line, item.Value)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	if flowLists == 0 {
		t.Fatal("no flow list found: the walk is broken")
	}
}
