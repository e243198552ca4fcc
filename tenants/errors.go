package tenants

import (
	"errors"
	"fmt"
	"strings"
)

// Error kinds. Domain functions return an *Error whose Kind is one of these, so callers test
// with errors.Is(err, tenants.ErrNotFound) and the HTTP layer maps each kind to one status.
var (
	ErrInvalid         = errors.New("invalid input")   // 400
	ErrUnauthenticated = errors.New("unauthenticated") // 401
	ErrForbidden       = errors.New("forbidden")       // 403
	ErrNotFound        = errors.New("not found")       // 404
	ErrConflict        = errors.New("conflict")        // 409
)

// Error is a failure a caller can act on: a kind, a stable snake_case key, a sentence for a
// person, and (for validation errors) the problem with each field.
type Error struct {
	Kind     error
	Key      string
	Message  string
	Metadata map[string]any
}

func (e *Error) Error() string { return e.Message }

// With adds a field's problem to e's metadata and returns e.
func (e *Error) With(field, problem string) *Error {
	if e.Metadata == nil {
		e.Metadata = map[string]any{}
	}
	e.Metadata[field] = problem
	return e
}
func (e *Error) Unwrap() error { return e.Kind }

// Errorf builds an *Error of the given kind.
func Errorf(kind error, key, format string, args ...any) *Error {
	return &Error{Kind: kind, Key: key, Message: fmt.Sprintf(format, args...)}
}

// Escalation refuses a request that would grant more than the caller holds (403
// permission_escalation): a role, a user's roles, a key, a token, a rotated key's value, or an
// expiry later than the caller's own. what completes "You cannot ..."; missing is what the
// caller lacks, named in the message and listed in metadata.missing_actions (none for an
// expiry).
func Escalation(what string, missing Permissions) *Error {
	if missing == 0 {
		return Errorf(ErrForbidden, "permission_escalation",
			"You cannot %s: a credential never exceeds the one it derives from.", what)
	}
	return &Error{Kind: ErrForbidden, Key: "permission_escalation",
		Message:  fmt.Sprintf("You cannot %s: it needs %s, which your credential does not have.", what, missing.list()),
		Metadata: map[string]any{"missing_actions": missing.Actions()}}
}

// FieldErrors collects validation problems, one message per field, in the order found.
type FieldErrors struct {
	order  []string
	byName map[string]string
}

// Add records msg for field unless msg is "" (no problem: checks such as CheckText return ""
// for a good value) or the field already has a problem.
func (f *FieldErrors) Add(field, msg string) {
	if msg == "" {
		return
	}
	if f.byName == nil {
		f.byName = map[string]string{}
	}
	if _, ok := f.byName[field]; ok {
		return
	}
	f.order = append(f.order, field)
	f.byName[field] = msg
}

// FieldError is a 400 validation_failed for one field's problem: the one way to refuse a
// single field, as FieldErrors refuses several.
func FieldError(field, problem string) *Error {
	var f FieldErrors
	f.Add(field, problem)
	return f.refusal()
}

// Err is nil when no field has a problem, else a 400 validation_failed naming every field.
func (f *FieldErrors) Err() error {
	if len(f.order) == 0 {
		return nil
	}
	return f.refusal()
}

func (f *FieldErrors) refusal() *Error {
	meta := make(map[string]any, len(f.order))
	parts := make([]string, 0, len(f.order))
	for _, name := range f.order {
		meta[name] = f.byName[name]
		parts = append(parts, name+": "+f.byName[name])
	}
	return &Error{Kind: ErrInvalid, Key: "validation_failed",
		Message: "The request has invalid fields: " + strings.Join(parts, "; ") + ".", Metadata: meta}
}

// IsUniqueViolation reports whether err is a unique-constraint failure from SQLite or
// PostgreSQL (SQLSTATE 23505), without this package importing a driver.
func IsUniqueViolation(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23505"
	}
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// IsForeignKeyViolation reports whether err is a foreign-key failure from SQLite or PostgreSQL
// (SQLSTATE 23503).
func IsForeignKeyViolation(err error) bool {
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) {
		return pg.SQLState() == "23503"
	}
	return err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}
