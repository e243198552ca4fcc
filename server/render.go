package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
)

// writeJSON sends v as the JSON body of every envelope and error. Unlike Gin's c.JSON it does
// not escape <, > and & (as \u003c...): a message such as "use Bearer <key>" reads as written.
// Every body is sent as application/json, which browsers do not render as HTML. The bytes are
// otherwise those of json.Marshal.
func writeJSON(c *gin.Context, status int, v any) {
	c.Render(status, plainJSON{v})
}

type plainJSON struct{ v any }

var (
	jsonContentType = []string{"application/json; charset=utf-8"}
	jsonBuffers     = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

// maxPooledBuffer keeps a large list's buffer from being held on to after it is sent.
const maxPooledBuffer = 64 << 10

func (r plainJSON) Render(w http.ResponseWriter) error {
	r.WriteContentType(w)
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			buf.Reset()
			jsonBuffers.Put(buf)
		}
	}()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.v); err != nil {
		return err
	}
	b := buf.Bytes()
	_, err := w.Write(b[:len(b)-1]) // Encode ends the value with a newline; Marshal does not
	return err
}

func (plainJSON) WriteContentType(w http.ResponseWriter) {
	if h := w.Header(); len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
}
