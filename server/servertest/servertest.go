// Package servertest drives a running Tenantry server over HTTP in tests and checks every
// response against openapi.yaml, so a test that passes also proves the contract holds.
package servertest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tenantry/tenantry"
	"github.com/tenantry/tenantry/tenants"
)

var (
	specOnce sync.Once
	spec     *openapi3.T
	specErr  error
)

// Spec loads and validates openapi.yaml once per test binary.
func Spec(t testing.TB) *openapi3.T {
	t.Helper()
	specOnce.Do(func() {
		// Check formats in responses; ids are RFC 9562 UUIDs (version 7), which the
		// RFC 4122 pattern kin-openapi would otherwise use does not accept.
		openapi3.DefineStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562))
		// kin-openapi checks no uri format of its own: an absolute RFC 3986 URI, ASCII only.
		openapi3.DefineStringFormatValidator("uri", openapi3.NewCallbackValidator(checkURI))
		// The reference page and its renderer are text; their bodies are checked as strings.
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.FileBodyDecoder)
		openapi3filter.RegisterBodyDecoder("text/javascript", openapi3filter.FileBodyDecoder)
		loader := openapi3.NewLoader()
		spec, specErr = loader.LoadFromData(tenantry.Spec)
		if specErr == nil {
			specErr = spec.Validate(context.Background())
		}
	})
	if specErr != nil {
		t.Fatalf("openapi.yaml: %v", specErr)
	}
	return spec
}

// Client calls one server as one credential (or none) and validates each response.
type Client struct {
	t       testing.TB
	BaseURL string
	Key     string            // sent as "Authorization: Bearer <Key>" when not empty
	Header  map[string]string // extra headers on every request
	// Seen, when set, is called with every response (tests that audit all responses use it).
	Seen func(method, path string, r *Response)
	// HTTP sends the requests (nil: http.DefaultClient); give one a Timeout to bound each.
	HTTP   *http.Client
	router routers.Router
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// New returns a client of the server at baseURL.
func New(t testing.TB, baseURL string) *Client {
	t.Helper()
	doc := *Spec(t)
	doc.Servers = openapi3.Servers{{URL: baseURL}}
	router, err := gorillamux.NewRouter(&doc)
	if err != nil {
		t.Fatalf("openapi router: %v", err)
	}
	return &Client{t: t, BaseURL: baseURL, router: router}
}

// As returns a copy of c that sends key.
func (c *Client) As(key string) *Client {
	cc := *c
	cc.Key = key
	return &cc
}

// Response is a completed, spec-checked response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value.
func (r *Response) JSON() map[string]any {
	var v map[string]any
	json.Unmarshal(r.Body, &v)
	return v
}

// Data returns the "data" member of a success body as an object.
func (r *Response) Data() map[string]any {
	d, _ := r.JSON()["data"].(map[string]any)
	return d
}

// List returns the "data" member of a success body as a list of objects.
func (r *Response) List() []map[string]any {
	raw, _ := r.JSON()["data"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, x := range raw {
		m, _ := x.(map[string]any)
		out = append(out, m)
	}
	return out
}

// ErrorKey returns the "key" of an error body.
func (r *Response) ErrorKey() string {
	k, _ := r.JSON()["key"].(string)
	return k
}

// Do sends a request. body may be nil, a string or []byte (sent as is), an io.Reader (sent
// chunked, without Content-Length), or any other value (sent as JSON). A JSON Content-Type is set whenever there is a body, unless headers
// override it; headers are name, value pairs.
func (c *Client) Do(method, path string, body any, headers ...string) *Response {
	c.t.Helper()
	r, err := c.TryDo(method, path, body, headers...)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// TryDo is Do for a server that may be gone: a failed exchange is an error, not a failure of
// the test (safe to call from other goroutines). A response that arrives is still checked.
func (c *Client) TryDo(method, path string, body any, headers ...string) (*Response, error) {
	c.t.Helper()
	var raw []byte
	var stream io.Reader
	switch b := body.(type) {
	case nil:
	case io.Reader:
		stream = struct{ io.Reader }{b} // hides the length, so the request is chunked
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			return nil, fmt.Errorf("marshal body: %w", err)
		}
	}
	if stream == nil {
		stream = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.BaseURL+path, stream)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	for k, v := range c.Header {
		req.Header.Set(k, v)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: got}
	c.check(req, r)
	if c.Seen != nil {
		c.Seen(method, path, r)
	}
	return r, nil
}

// Send sends req exactly as built (a header given twice, say, which Do cannot) and checks the
// response as Do does.
func (c *Client) Send(req *http.Request) *Response {
	c.t.Helper()
	resp, err := c.httpClient().Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: got}
	c.check(req, r)
	return r
}

// SendRaw writes raw, one HTTP/1.1 request byte for byte (a folded header line, say, which
// Go's client never sends), to the server over TCP and checks the response as Do does,
// against the request as Go's server parses it.
func (c *Client) SendRaw(raw string) *Response {
	c.t.Helper()
	base, err := url.Parse(c.BaseURL)
	if err != nil {
		c.t.Fatalf("base URL: %v", err)
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		c.t.Fatalf("the raw request does not parse: %v", err)
	}
	req.URL.Scheme, req.URL.Host, req.Host, req.RequestURI = base.Scheme, base.Host, "", ""
	conn, err := net.Dial("tcp", base.Host)
	if err != nil {
		c.t.Fatalf("dial %s: %v", base.Host, err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		c.t.Fatalf("write the raw request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		c.t.Fatalf("read the response: %v", err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: got}
	c.check(req, r)
	return r
}

// checkURI is the uri format: an absolute URI (RFC 3986 section 4.3) made of the characters
// RFC 3986 allows.
func checkURI(s string) error {
	for _, r := range s {
		if !(r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~:/?#[]@!$&'()*+,;=%", r))) {
			return fmt.Errorf("%q is not a character of a URI", r)
		}
	}
	if u, err := url.Parse(s); err != nil || !u.IsAbs() {
		return fmt.Errorf("not an absolute URI")
	}
	return nil
}

// CheckRequest validates a request as Do would send it against openapi.yaml: its route,
// parameters and body. nil means the spec allows it. Tests use it to prove the spec refuses
// exactly what the server refuses, so clients and validators generated from it agree with
// the server. Security requirements are not checked (the credential is the server's concern).
func (c *Client) CheckRequest(method, path string, body any, headers ...string) error {
	c.t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return fmt.Errorf("marshal body: %w", err)
		}
	}
	req, err := http.NewRequest(method, c.BaseURL+path, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("no operation in openapi.yaml: %w", err)
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	})
}

// check validates r against openapi.yaml: the status must be declared for the operation, and
// the headers and body must match. A request to no documented route must get a 404 or 405 in
// the error shape.
func (c *Client) check(req *http.Request, r *Response) {
	c.t.Helper()
	served := r.Header.Get("X-Polytomic-Version")
	if served == "" {
		c.t.Errorf("%s %s: response has no X-Polytomic-Version header", req.Method, req.URL.Path)
	}
	if asked := req.Header.Get("X-Polytomic-Version"); tenants.IsVersion(asked) && served != asked {
		c.t.Errorf("%s %s: asked for version %s, served at %s", req.Method, req.URL.Path, asked, served)
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if r.Status != http.StatusNotFound && r.Status != http.StatusMethodNotAllowed {
			c.t.Errorf("%s %s: not in openapi.yaml, yet answered %d: %s", req.Method, req.URL.Path, r.Status, r.Body)
		}
		CheckErrorShape(c.t, r)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 r.Status,
		Header:                 r.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	body := r.Body
	if r.Header.Get("Content-Encoding") == "gzip" { // the body the spec describes is the decoded one
		zr, err := gzip.NewReader(bytes.NewReader(r.Body))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			c.t.Errorf("%s %s: Content-Encoding gzip, but the body is not gzip: %v", req.Method, req.URL.Path, err)
		}
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Errorf("%s %s: response %d does not match openapi.yaml: %v\nbody: %s", req.Method, req.URL.Path, r.Status, err, r.Body)
	}
	if r.Status >= 400 {
		CheckErrorShape(c.t, r)
	}
}

// CheckErrorShape fails unless r's body is exactly {"status","key","message","metadata"} with
// the status matching the response's.
func CheckErrorShape(t testing.TB, r *Response) {
	t.Helper()
	var body struct {
		Status   int            `json:"status"`
		Key      string         `json:"key"`
		Message  string         `json:"message"`
		Metadata map[string]any `json:"metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Errorf("error body is not the error shape: %v: %s", err, r.Body)
		return
	}
	if body.Status != r.Status || body.Key == "" || body.Message == "" || body.Metadata == nil {
		t.Errorf("error body incomplete or status mismatch (%d): %s", r.Status, r.Body)
	}
	if strings.ToLower(body.Key) != body.Key || strings.Contains(body.Key, " ") {
		t.Errorf("error key %q is not snake_case", body.Key)
	}
}

// LogBuffer collects log output written from many goroutines, for tests that read the logs.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// String is the body as text.
func (r *Response) String() string { return string(r.Body) }
