package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

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

func readJSONBody(c *gin.Context) ([]byte, error) {
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
		mt, _, err := mime.ParseMediaType(c.GetHeader("Content-Type"))
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, newAPIError(http.StatusUnsupportedMediaType, "unsupported_media_type",
				"Request bodies must be JSON: send 'Content-Type: application/json'.")
		}
		if !utf8.Valid(body) {
			// encoding/json would silently turn invalid bytes into U+FFFD.
			return nil, newAPIError(http.StatusBadRequest, "malformed_json", "The request body is not valid UTF-8.")
		}
	}
	return body, nil
}

func unmarshalStrict(body []byte, dst any) error {
	if body = bytes.TrimSpace(body); body[0] != '{' {
		return newAPIError(http.StatusBadRequest, "malformed_json", "The request body must be a JSON object.")
	}
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
	case err == nil:
		return nil
	case errors.As(err, &syntax):
		return newAPIError(http.StatusBadRequest, "malformed_json",
			"The request body is not valid JSON (at byte %d): %s.", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		return tenants.FieldError(typ.Field, "must be "+jsonType(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return newAPIError(http.StatusBadRequest, "unknown_field",
			"The request body has a field this endpoint does not accept: %q.", field).
			with("field", field)
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

// checkFieldNames refuses, in a body that decoded, any object key that is not exactly a field
// name of the struct it fills (400 unknown_field), and any key given twice (400
// duplicate_field). Maps (such as a connection's configuration) are free-form.
func checkFieldNames(raw []byte, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil // cannot happen: the body decoded already
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		ft, ok := fields[key]
		if !ok {
			return newAPIError(http.StatusBadRequest, "unknown_field",
				"The request body has a field this endpoint does not accept: %q (field names are case-sensitive).", key).
				with("field", key)
		}
		if seen[key] {
			return newAPIError(http.StatusBadRequest, "duplicate_field", "The request body gives field %q more than once.", key).
				with("field", key)
		}
		seen[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil
		}
		if err := checkFieldNames(bytes.TrimSpace(value), ft); err != nil {
			return err
		}
	}
	return nil
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
