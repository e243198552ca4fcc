// Package docs renders the API contract (package tenantry's Spec) as a readable reference, on
// the server, with no script and no asset from anywhere else.
package docs

import (
	"bytes"
	"fmt"
	"html/template"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Operation is one endpoint of the reference.
type Operation struct {
	Method, Path, ID, Summary, Description string
	Parameters                             []Parameter
	RequestBody                            string
	Responses                              []Response
	Public                                 bool
}

// Parameter is one parameter of an operation.
type Parameter struct{ Name, In, Description string }

// Response is one status an operation answers with.
type Response struct{ Status, Description string }

// Section is a tag's operations.
type Section struct {
	Tag, Description string
	Operations       []Operation
}

type reference struct {
	Title, Version, Description string
	Sections                    []Section
	Count                       int
}

// Render turns an OpenAPI 3 document into one HTML page: every operation, grouped by tag, with
// its parameters, body and responses. It resolves the spec's $refs to components one level.
func Render(spec []byte) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("parse openapi.yaml: %w", err)
	}
	info, _ := doc["info"].(map[string]any)
	ref := reference{Title: str(info["title"]), Version: str(info["version"]), Description: str(info["description"])}
	comps, _ := doc["components"].(map[string]any)
	byTag := map[string]*Section{}
	var order []string
	for _, t := range anyList(doc["tags"]) {
		tm, _ := t.(map[string]any)
		name := str(tm["name"])
		byTag[name] = &Section{Tag: name, Description: str(tm["description"])}
		order = append(order, name)
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, p := range sortedKeys(paths) {
		item, _ := paths[p].(map[string]any)
		for _, method := range []string{"get", "post", "put", "patch", "delete"} {
			op, ok := item[method].(map[string]any)
			if !ok {
				continue
			}
			tag := "Other"
			if tags := anyList(op["tags"]); len(tags) > 0 {
				tag = str(tags[0])
			}
			if byTag[tag] == nil {
				byTag[tag] = &Section{Tag: tag}
				order = append(order, tag)
			}
			byTag[tag].Operations = append(byTag[tag].Operations, operation(components(comps), method, p, item, op))
			ref.Count++
		}
	}
	for _, t := range order {
		if len(byTag[t].Operations) > 0 {
			ref.Sections = append(ref.Sections, *byTag[t])
		}
	}
	var out bytes.Buffer
	if err := page.Execute(&out, ref); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// components resolves a value that may be a $ref to one of comps, one level deep.
type components map[string]any

func (comps components) resolve(v any) map[string]any {
	m, _ := v.(map[string]any)
	if r, ok := m["$ref"].(string); ok {
		parts := strings.Split(strings.TrimPrefix(r, "#/components/"), "/")
		if len(parts) == 2 {
			group, _ := comps[parts[0]].(map[string]any)
			m, _ = group[parts[1]].(map[string]any)
		}
	}
	return m
}

// operation is the reference of the operation op, method on path (whose path item is item).
func operation(comps components, method, path string, item, op map[string]any) Operation {
	o := Operation{Method: strings.ToUpper(method), Path: path, ID: str(op["operationId"]), Summary: str(op["summary"]),
		Description: str(op["description"])}
	if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
		o.Public = true
	}
	for _, prm := range append(anyList(item["parameters"]), anyList(op["parameters"])...) {
		pm := comps.resolve(prm)
		o.Parameters = append(o.Parameters, Parameter{Name: str(pm["name"]), In: str(pm["in"]), Description: str(pm["description"])})
	}
	if rb := comps.resolve(op["requestBody"]); rb != nil {
		o.RequestBody = str(rb["description"])
		if content, ok := rb["content"].(map[string]any); ok {
			for ct, c := range content {
				cm, _ := c.(map[string]any)
				schema, _ := cm["schema"].(map[string]any)
				o.RequestBody = strings.TrimSpace(ct + " " + strings.TrimPrefix(str(schema["$ref"]), "#/components/schemas/") + ". " + o.RequestBody)
			}
		}
	}
	responses, _ := op["responses"].(map[string]any)
	for _, st := range sortedKeys(responses) {
		o.Responses = append(o.Responses, Response{Status: st, Description: str(comps.resolve(responses[st])["description"])})
	}
	return o
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func anyList(v any) []any {
	l, _ := v.([]any)
	return l
}

var page = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} {{.Version}}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;display:flex}
nav{width:17rem;height:100vh;overflow:auto;position:sticky;top:0;background:#f5f6f8;padding:1rem;box-sizing:border-box;font-size:13px}
nav a{display:block;color:#1b1f24;text-decoration:none;padding:1px 0}
main{flex:1;padding:1.5rem 2.5rem;max-width:60rem}
.operation{border:1px solid #d8dde3;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}
.method{font:bold 12px monospace;padding:2px 6px;border-radius:4px;color:#fff;background:#3b6fd4}
.method.POST{background:#2f9e58}.method.PUT,.method.PATCH{background:#c98a12}.method.DELETE{background:#c43d3d}
code,.path{font-family:ui-monospace,monospace}.path{font-weight:600;margin-left:.4rem}
.desc{white-space:pre-wrap;color:#3a424c}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #e2e6ea;padding:3px 8px;text-align:left;vertical-align:top}
</style></head><body>
<nav><strong>{{.Title}}</strong><br><small>version {{.Version}} · {{.Count}} operations</small>
{{range .Sections}}<p><strong>{{.Tag}}</strong>{{range .Operations}}<a href="#{{.ID}}">{{.Method}} {{.Path}}</a>{{end}}</p>{{end}}</nav>
<main><h1>{{.Title}}</h1><p class="desc">{{.Description}}</p>
{{range .Sections}}<section><h2>{{.Tag}}</h2>{{if .Description}}<p>{{.Description}}</p>{{end}}
{{range .Operations}}<div class="operation" id="{{.ID}}" data-operation-id="{{.ID}}">
<span class="method {{.Method}}">{{.Method}}</span><span class="path">{{.Path}}</span>{{if .Public}} <small>(no credential)</small>{{end}}
<h3>{{.Summary}}</h3><p class="desc">{{.Description}}</p>
{{if .Parameters}}<table><tr><th>parameter</th><th>in</th><th>description</th></tr>{{range .Parameters}}<tr><td><code>{{.Name}}</code></td><td>{{.In}}</td><td class="desc">{{.Description}}</td></tr>{{end}}</table>{{end}}
{{if .RequestBody}}<p><strong>Body:</strong> {{.RequestBody}}</p>{{end}}
<table><tr><th>status</th><th>response</th></tr>{{range .Responses}}<tr><td>{{.Status}}</td><td>{{.Description}}</td></tr>{{end}}</table>
</div>{{end}}</section>{{end}}
</main></body></html>
`))
