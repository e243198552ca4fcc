package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"

	"github.com/tenantry/tenantry/tenants"
)

// maxBodyBytes is the largest request body accepted (1 MiB).
const maxBodyBytes = 1 << 20

// limitBody caps every request body; readJSONBody turns the overflow into a 413.
func limitBody(c *gin.Context) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
	c.Next()
}

var errBodyTooLarge = newAPIError(http.StatusRequestEntityTooLarge, "body_too_large",
	"The request body is larger than 1 MiB.")

// decodeJSON reads the request body as one JSON object into dst, rejecting unknown fields.
// A body is required.
func decodeJSON(c *gin.Context, dst any) error {
	body, err := readJSONBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return newAPIError(http.StatusBadRequest, "body_required", "This endpoint needs a JSON object as the request body.")
	}
	c.Set(ctxBody, body)
	return unmarshalStrict(body, dst)
}

// decodePatch reads a partial update (PATCH, before version 2025-09-18): the body's fields
// overwrite those of dst, which holds the resource as it is, and the rest stay. It returns the
// names of the fields the body gave.
func decodePatch(c *gin.Context, dst any) (map[string]bool, error) {
	if err := decodeJSON(c, dst); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	body, _ := c.Get(ctxBody)
	if err := json.Unmarshal(body.([]byte), &fields); err != nil {
		return nil, newAPIError(http.StatusBadRequest, "malformed_json", "The request body must be a JSON object.")
	}
	given := make(map[string]bool, len(fields))
	for k := range fields {
		given[k] = true
	}
	return given, nil
}

// decodeOptionalJSON accepts an empty body, or a JSON object holding only dst's fields.
func decodeOptionalJSON(c *gin.Context, dst any) error {
	body, err := readJSONBody(c)
	if err != nil || len(bytes.TrimSpace(body)) == 0 {
		return err
	}
	return unmarshalStrict(body, dst)
}

// readBody reads the request body (413 past 1 MiB) and, when it is not empty, checks that its
// Content-Type is one of accepted's (415 with refusal otherwise).
func readBody(c *gin.Context, accepted func(mediaType string) bool, refusal string) ([]byte, error) {
	if c.Request.ContentLength > maxBodyBytes {
		return nil, errBodyTooLarge
	}
	body, err := io.ReadAll(c.Request.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errBodyTooLarge
	}
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, "unreadable_body", "The request body could not be read.")
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || !accepted(mt) {
			return nil, newAPIError(http.StatusUnsupportedMediaType, "unsupported_media_type", "%s", refusal)
		}
	}
	return body, nil
}

// Request bodies are JSON, with one exception: OAuth's endpoints, whose RFCs define form
// bodies (POST /oauth/introspect, RFC 7662 §2.1), read theirs with decodeForm, and only they.
func readJSONBody(c *gin.Context) ([]byte, error) {
	body, err := readBody(c, func(mt string) bool { return mt == "application/json" || strings.HasSuffix(mt, "+json") },
		"Request bodies must be JSON: send 'Content-Type: application/json'.")
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(body) {
		// encoding/json would silently turn invalid bytes into U+FFFD.
		return nil, newAPIError(http.StatusBadRequest, "malformed_json", "The request body is not valid UTF-8.")
	}
	return body, nil
}

// decodeForm reads an application/x-www-form-urlencoded body, the body of OAuth's endpoints
// (the exception to JSON bodies). Parameters it does not know are left for the handler to
// ignore, as OAuth's endpoints ignore unrecognized parameters (RFC 6749 §3.2), but none may be
// given twice (§3.1: 400 duplicate_field).
func decodeForm(c *gin.Context) (url.Values, error) {
	body, err := readBody(c, func(mt string) bool { return mt == "application/x-www-form-urlencoded" },
		"This endpoint takes a form, as OAuth clients send it: send 'Content-Type: application/x-www-form-urlencoded' and token=<credential>.")
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, newAPIError(http.StatusBadRequest, "malformed_form",
			"The request body is not a valid form (application/x-www-form-urlencoded): %s.", err.Error())
	}
	for _, name := range slices.Sorted(maps.Keys(form)) {
		if len(form[name]) > 1 {
			return nil, newAPIError(http.StatusBadRequest, "duplicate_field", "The request body gives parameter %q more than once.", name).
				with("field", name)
		}
	}
	return form, nil
}

// strictJSON decodes as encoding/json does (v1 semantics: null leaves a field as it was, a
// PATCH body merges into the resource), except that a key must be exactly a field's name, once,
// and known: the refusals unmarshalStrict makes, checked in the one pass of
// github.com/go-json-experiment/json (the basis of Go's encoding/json/v2), which took a tenth
// of the time of decoding, then walking the body's keys (the cost of a small body's decode was
// a tenth of POST /api/keys/verify's).
var strictJSON = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(),
	jsonv2.RejectUnknownMembers(true), jsonv2.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))

// crossCheckStrict, set by this package's tests, has every body the fast path accepts decoded
// by the explaining path too, which must accept it and decode the same value.
var crossCheckStrict bool

// unmarshalStrict decodes body, a JSON object, into dst, or says precisely what is wrong
// with it: 400 malformed_json, unknown_field (naming every one), duplicate_field, or a field
// error for a value of the wrong type.
func unmarshalStrict(body []byte, dst any) error {
	if body = bytes.TrimSpace(body); body[0] != '{' {
		return newAPIError(http.StatusBadRequest, "malformed_json", "The request body must be a JSON object.")
	}
	var before reflect.Value
	if crossCheckStrict {
		before = reflect.New(reflect.TypeOf(dst).Elem())
		before.Elem().Set(reflect.ValueOf(dst).Elem())
	}
	if err := jsonv2.Unmarshal(body, dst, strictJSON); err == nil {
		if crossCheckStrict {
			if err := explainRefusal(body, before.Interface()); err != nil || !reflect.DeepEqual(before.Interface(), dst) {
				panic(fmt.Sprintf("strict decoding disagrees on %s into %T: explained %v; %+v, %+v", body, dst, err, before.Elem(), reflect.ValueOf(dst).Elem()))
			}
		}
		return nil
	}
	// What the fast path refuses, the slower one decides: it names what is wrong the way people
	// read it, and accepts what the fast path is stricter about than the rules above (a key
	// repeated inside a free-form value, such as a connection's configuration, where the last
	// one counts; a lone UTF-16 surrogate escape, read as U+FFFD). It decodes into dst afresh,
	// overwriting what the fast path set before it stopped with the same values.
	return explainRefusal(body, dst)
}

// explainRefusal decodes body into dst with encoding/json and checks its keys: the refusal
// unmarshalStrict answers, or nil for a body it accepts.
func explainRefusal(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil && len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		return newAPIError(http.StatusBadRequest, "malformed_json",
			"The request body has data after its JSON object (at byte %d).", dec.InputOffset())
	}
	if err == nil {
		// encoding/json matches field names ignoring case and keeps the last of duplicates;
		// a typo or a repeated field must not silently do something else.
		return checkFieldNames(body, reflect.TypeOf(dst))
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return newAPIError(http.StatusBadRequest, "malformed_json",
			"The request body is not valid JSON (at byte %d): %s.", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		return tenants.FieldError(typ.Field, "must be "+jsonType(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The decoder stops at the first; the walk names them all, when the body is JSON to
		// its end (else the first is all there is to say).
		if err := checkFieldNames(body, reflect.TypeOf(dst)); err != nil {
			return err
		}
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return errUnknownFields([]unknownField{{name: field}})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newAPIError(http.StatusBadRequest, "malformed_json", "The request body is not valid JSON: it ends too early.")
	default:
		return newAPIError(http.StatusBadRequest, "malformed_json", "The request body is not valid JSON.")
	}
}

// jsonType names a Go kind the way a JSON author would.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	case "struct", "map":
		return "an object"
	default:
		return "a number"
	}
}

// checkFieldNames refuses, in a body that decoded, the object keys that are not exactly a field
// name of the struct they fill (400 unknown_field, naming every one, at any depth, with the
// nearest field name when one is close), and else a key given twice (400 duplicate_field).
// Maps (such as a connection's configuration) are free-form.
func checkFieldNames(raw []byte, t reflect.Type) error {
	var w fieldWalk
	w.walk(raw, t, "")
	switch {
	case len(w.unknown) > 0:
		return errUnknownFields(w.unknown)
	case w.duplicate != "":
		return newAPIError(http.StatusBadRequest, "duplicate_field", "The request body gives field %q more than once.", w.duplicate).
			with("field", w.duplicate)
	}
	return nil
}

// unknownField is a key of the body that names no field: its path (parent.name for a nested
// one) and the nearest field name, if one is close.
type unknownField struct{ name, suggestion string }

type fieldWalk struct {
	unknown   []unknownField
	duplicate string // the first key given twice
}

// maxUnknownFields bounds what one refusal lists.
const maxUnknownFields = 20

func (w *fieldWalk) walk(raw []byte, t reflect.Type, prefix string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && len(raw) > 0 && raw[0] == '[' {
		// The items of an array are checked as strictly as a field's object: a batch's items,
		// a policy's actions. Named as validation names them: items[1].organization.name.
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return
		}
		for i, item := range items {
			w.walk(bytes.TrimSpace(item), t.Elem(), fmt.Sprintf("%s[%d].", strings.TrimSuffix(prefix, "."), i))
		}
		return
	}
	if t.Kind() != reflect.Struct || len(raw) == 0 || raw[0] != '{' {
		return
	}
	fields := map[string]reflect.Type{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
			names = append(names, name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return // cannot happen: the body decoded already
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		key, _ := tok.(string)
		ft, ok := fields[key]
		if !ok && len(w.unknown) < maxUnknownFields {
			w.unknown = append(w.unknown, unknownField{name: prefix + key, suggestion: nearest(key, names)})
		}
		if ok && seen[key] && w.duplicate == "" {
			w.duplicate = prefix + key
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return
		}
		if ok {
			w.walk(bytes.TrimSpace(value), ft, prefix+key+".")
		}
	}
}

// errUnknownFields is the refusal of a body's unknown fields: the message names each, with
// the nearest field name when one is close ("nmae": did you mean "name"?); metadata has the
// first as field (as before there was one), all of them as fields, and the suggestions.
func errUnknownFields(unknown []unknownField) *apiError {
	var b strings.Builder
	names := make([]string, len(unknown))
	suggestions := map[string]any{}
	caseOnly := false
	for i, u := range unknown {
		names[i] = u.name
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", u.name)
		if u.suggestion != "" {
			fmt.Fprintf(&b, " (did you mean %q?)", u.suggestion)
			suggestions[u.name] = u.suggestion
			_, last, _ := cutLast(u.name)
			caseOnly = caseOnly || strings.EqualFold(last, u.suggestion)
		}
	}
	msg := "The request body has a field this endpoint does not accept: "
	if len(unknown) > 1 {
		msg = "The request body has fields this endpoint does not accept: "
	}
	msg += b.String() + "."
	if caseOnly {
		msg += " Field names are case-sensitive."
	}
	e := newAPIError(http.StatusBadRequest, "unknown_field", "%s", msg).with("field", names[0]).with("fields", names)
	if len(suggestions) > 0 {
		e.with("suggestions", suggestions)
	}
	return e
}

// cutLast splits a dotted path before its last name.
func cutLast(path string) (parent, name string, nested bool) {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i], path[i+1:], true
	}
	return "", path, false
}

// nearest is the field name closest to key (fewest edits, case ignored, a swap of two
// neighbours counting as one), if it is close: at most 2 edits, and fewer than half of key.
func nearest(key string, names []string) string {
	best, bestDist := "", 3
	for _, name := range names {
		d := editDistance(strings.ToLower(key), strings.ToLower(name))
		if d < bestDist && 2*d < max(len([]rune(key)), 2) || d == 0 {
			best, bestDist = name, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b (Levenshtein with swaps of
// neighbours), on runes. Keys are short, and compared with a struct's few field names.
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	if len(x) > 64 || len(y) > 64 {
		return 64 // not a typo of a field name
	}
	prev2 := make([]int, len(y)+1)
	prev := make([]int, len(y)+1)
	cur := make([]int, len(y)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(x); i++ {
		cur[0] = i
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(y)]
}

// jsonMember is one member of a JSON object, its value as written.
type jsonMember struct {
	Name  string
	Value json.RawMessage
}

// objectMembers lists the members of raw, a JSON object that decoded already, in order and
// repeats included, so that what is made of them (encodeMembers) is refused or accepted by
// unmarshalStrict exactly as raw itself would be.
func objectMembers(raw []byte) []jsonMember {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	var out []jsonMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		name, _ := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return out
		}
		out = append(out, jsonMember{name, value})
	}
	return out
}

// encodeMembers writes members as one JSON object, in their order.
func encodeMembers(members []jsonMember) []byte {
	b := []byte{'{'}
	for i, m := range members {
		if i > 0 {
			b = append(b, ',')
		}
		name, _ := json.Marshal(m.Name)
		b = append(append(append(b, name...), ':'), m.Value...)
	}
	return append(b, '}')
}
