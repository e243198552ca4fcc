package docs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v4"
)

// ReferencePath is where the server serves the contract as the page renders it: openapi.yaml
// as JSON, with a curl sample added to every operation (Reference). GET /openapi.yaml stays the
// contract byte for byte; this is a view of it, made from it when the server starts serving it,
// so a sample cannot drift from the operation it shows.
const ReferencePath = "/docs/openapi.json"

// curlIntro is the paragraph Reference adds to info.description's Authentication section (before
// Redoc's security definitions, else at the end), saying what the samples' variables are.
const curlIntro = "**curl samples.** Each operation shows a curl sample, generated from this contract. Set " +
	"`TENANTRY_URL` to the server's base URL (for example `export TENANTRY_URL=http://127.0.0.1:8080`) and " +
	"`TENANTRY_KEY` to a credential that may call the operation; a path parameter is a shell variable " +
	"named after it in capitals (`$ORG_ID` for `{org_id}`, `$ID` for `{id}`). An operation that reads a " +
	"body sends its example.\n\n"

const securityInject = "<!-- ReDoc-Inject: <security-definitions> -->"

// methods are the keys of a path item that are operations.
var methods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}

// Reference is spec (openapi.yaml) as JSON, in the spec's own order (which Redoc shows), with
// Redoc's x-codeSamples extension on every operation: a curl sample (CurlSample) made from the
// operation's method, path, security and request body example; and info.description saying
// what the samples' variables are. It fails on what JSON cannot say (a non-string key, an
// infinite number) or on a $ref that names nothing.
func Reference(spec []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("docs: the contract is not one YAML mapping")
	}
	root := doc.Content[0]
	if desc := lookup(lookup(root, "info"), "description"); desc != nil && desc.Kind == yaml.ScalarNode {
		if i := strings.Index(desc.Value, securityInject); i >= 0 {
			desc.Value = desc.Value[:i] + curlIntro + desc.Value[i:]
		} else {
			desc.Value = strings.TrimRight(desc.Value, "\n") + "\n\n" + curlIntro
		}
	}
	public := isPublic(lookup(root, "security"))
	paths := lookup(root, "paths")
	if paths == nil || paths.Kind != yaml.MappingNode {
		return nil, errors.New("docs: the contract has no paths")
	}
	for i := 0; i+1 < len(paths.Content); i += 2 {
		path, item := paths.Content[i].Value, paths.Content[i+1]
		for j := 0; j+1 < len(item.Content); j += 2 {
			method, op := item.Content[j].Value, item.Content[j+1]
			if !methods[method] || op.Kind != yaml.MappingNode {
				continue
			}
			opPublic := public
			if sec := lookup(op, "security"); sec != nil {
				opPublic = isPublic(sec)
			}
			body, form, err := bodyExample(root, lookup(op, "requestBody"))
			if err != nil {
				return nil, fmt.Errorf("docs: %s %s: %w", strings.ToUpper(method), path, err)
			}
			sample := CurlSample(strings.ToUpper(method), path, !opPublic, body, form)
			addCodeSample(op, sample)
		}
	}
	var b bytes.Buffer
	if err := writeJSON(&b, root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CurlSample is the curl command of one operation: its method, its path under $TENANTRY_URL
// with each {param} the shell variable $PARAM, the bearer header unless public, and body (the
// request body's example, JSON; nil for none) with its content type: sent as JSON or, when
// form is set, as a form of its members (--data-urlencode, one a member). Everything it quotes
// in single quotes is shell-quoted (shellQuote), so the command runs as shown.
func CurlSample(method, path string, authenticated bool, body []byte, form bool) string {
	var b strings.Builder
	b.WriteString("curl")
	if method != "GET" {
		b.WriteString(" -X " + method)
	}
	b.WriteString(` "$TENANTRY_URL` + shellPath(path) + `"`)
	if authenticated {
		b.WriteString(" \\\n  -H \"Authorization: Bearer $TENANTRY_KEY\"")
	}
	if body != nil && form {
		for _, field := range formFields(body) {
			b.WriteString(" \\\n  --data-urlencode " + shellQuote(field))
		}
	} else if body != nil {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, body, "  ", "  "); err != nil {
			pretty.Reset()
			pretty.Write(body)
		}
		b.WriteString(" \\\n  -H 'Content-Type: application/json'")
		b.WriteString(" \\\n  -d " + shellQuote(pretty.String()))
	}
	return b.String()
}

// formFields are the members of a JSON object as name=value, in order (a value that is no
// string as JSON writes it).
func formFields(object []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(object))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	var out []string
	for dec.More() {
		name, err := dec.Token()
		var value json.RawMessage
		if err != nil || dec.Decode(&value) != nil {
			return out
		}
		var text string
		if json.Unmarshal(value, &text) != nil {
			text = string(value)
		}
		out = append(out, fmt.Sprint(name)+"="+text)
	}
	return out
}

var pathParam = regexp.MustCompile(`\{[A-Za-z_][A-Za-z0-9_]*\}`)

// shellPath is path for inside double quotes: each {param} the variable $PARAM (${PARAM} when
// a letter, digit or _ follows, which would lengthen its name), the rest escaped.
func shellPath(path string) string {
	literal := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	var b strings.Builder
	last := 0
	for _, m := range pathParam.FindAllStringIndex(path, -1) {
		b.WriteString(literal.Replace(path[last:m[0]]))
		name := strings.ToUpper(path[m[0]+1 : m[1]-1])
		if m[1] < len(path) && (path[m[1]] == '_' || unicode.IsLetter(rune(path[m[1]])) || unicode.IsDigit(rune(path[m[1]]))) {
			b.WriteString("${" + name + "}")
		} else {
			b.WriteString("$" + name)
		}
		last = m[1]
	}
	b.WriteString(literal.Replace(path[last:]))
	return b.String()
}

// shellQuote quotes s for a POSIX shell: in single quotes, each ' in s ending the quoting, an
// escaped quote, and the quoting opened again.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// isPublic reports whether a security requirement list is empty (security: []): anyone may call.
func isPublic(sec *yaml.Node) bool {
	return sec != nil && sec.Kind == yaml.SequenceNode && len(sec.Content) == 0
}

// bodyExample is the example of a request body, as JSON, and whether it is sent as a form (nil
// when the body is neither application/json nor application/x-www-form-urlencoded): the media
// type's example, else its first examples entry's value, else its schema's example. A body
// with such content but no example is an error: its sample would not run.
func bodyExample(root, body *yaml.Node) (example []byte, form bool, err error) {
	if body == nil {
		return nil, false, nil
	}
	if body, err = resolve(root, body); err != nil {
		return nil, false, err
	}
	media := lookup(lookup(body, "content"), "application/json")
	if media == nil {
		media, form = lookup(lookup(body, "content"), "application/x-www-form-urlencoded"), true
	}
	if media == nil {
		return nil, false, nil
	}
	b, err := mediaExample(root, media)
	return b, form, err
}

// mediaExample is the example of a media type object, as JSON.
func mediaExample(root, media *yaml.Node) ([]byte, error) {
	var err error
	example := lookup(media, "example")
	if example == nil {
		if examples := lookup(media, "examples"); examples != nil && len(examples.Content) >= 2 {
			first, err := resolve(root, examples.Content[1])
			if err != nil {
				return nil, err
			}
			example = lookup(first, "value")
		}
	}
	if example == nil {
		if schema := lookup(media, "schema"); schema != nil {
			if schema, err = resolve(root, schema); err != nil {
				return nil, err
			}
			example = lookup(schema, "example")
		}
	}
	if example == nil {
		return nil, errors.New("the request body has no example (example, examples or its schema's example)")
	}
	var b bytes.Buffer
	if err := writeJSON(&b, example); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// resolve follows n's $ref, if it has one, within the document (#/...), as often as it leads to
// another.
func resolve(root, n *yaml.Node) (*yaml.Node, error) {
	for range 32 {
		ref := lookup(n, "$ref")
		if ref == nil {
			return n, nil
		}
		target, ok := strings.CutPrefix(ref.Value, "#/")
		if !ok {
			return nil, fmt.Errorf("$ref %q is not within the document", ref.Value)
		}
		n = root
		for _, part := range strings.Split(target, "/") {
			part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
			if n = lookup(n, part); n == nil {
				return nil, fmt.Errorf("$ref %q names nothing", ref.Value)
			}
		}
	}
	return nil, errors.New("$ref chain too long")
}

// lookup is the value of key in mapping n, nil when n is not a mapping or has no such key.
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// addCodeSample adds the curl sample to op's x-codeSamples (after any it already has).
func addCodeSample(op *yaml.Node, source string) {
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	sample := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
		str("lang"), str("curl"), str("label"), str("curl"), str("source"), str(source)}}
	if list := lookup(op, "x-codeSamples"); list != nil && list.Kind == yaml.SequenceNode {
		list.Content = append(list.Content, sample)
		return
	}
	op.Content = append(op.Content, str("x-codeSamples"), &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{sample}})
}

// writeJSON writes n as JSON, keeping the order of mappings, with scalars typed as YAML
// resolves them (a plain 2025-09-18 stays the string it is in OpenAPI, which has no dates).
func writeJSON(b *bytes.Buffer, n *yaml.Node) error {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return errors.New("docs: a YAML document of other than one node")
		}
		return writeJSON(b, n.Content[0])
	case yaml.AliasNode:
		return writeJSON(b, n.Alias)
	case yaml.MappingNode:
		b.WriteByte('{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || k.Value == "<<" && k.ShortTag() == "!!merge" {
				return fmt.Errorf("docs: line %d: a mapping key JSON cannot have", k.Line)
			}
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k.Value)
			b.WriteByte(':')
			if err := writeJSON(b, n.Content[i+1]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			b.WriteString("null")
		case "!!bool", "!!int", "!!float":
			var v any
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("docs: line %d: %w", n.Line, err)
			}
			if f, ok := v.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
				return fmt.Errorf("docs: line %d: %s is no JSON number", n.Line, n.Value)
			}
			j, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("docs: line %d: %w", n.Line, err)
			}
			b.Write(j)
		default:
			writeString(b, n.Value)
		}
	default:
		return fmt.Errorf("docs: line %d: a YAML node of kind %v", n.Line, n.Kind)
	}
	return nil
}

// writeString writes s as a JSON string, without escaping <, > and & (the descriptions have
// them, and the document is served as JSON, never inside HTML).
func writeString(b *bytes.Buffer, s string) {
	e := json.NewEncoder(b)
	e.SetEscapeHTML(false)
	e.Encode(s)
	b.Truncate(b.Len() - 1) // Encode's newline
}
