package tenants

import (
	"errors"
	"reflect"
	"testing"
)

// One field's refusal is exactly what FieldErrors gives for that field alone: one shape for
// every validation_failed, whichever layer finds the problem.
func TestFieldErrorIsFieldErrorsOfOne(t *testing.T) {
	var f FieldErrors
	f.Add("grace_seconds", "must be from 0 to 604800 (7 days)")
	one := FieldError("grace_seconds", "must be from 0 to 604800 (7 days)")
	if !reflect.DeepEqual(error(one), f.Err()) {
		t.Fatalf("FieldError %+v, FieldErrors %+v", one, f.Err())
	}
	if !errors.Is(one, ErrInvalid) || one.Key != "validation_failed" ||
		one.Message != "The request has invalid fields: grace_seconds: must be from 0 to 604800 (7 days)." {
		t.Fatalf("FieldError: %+v", one)
	}
}
