package server

import (
	"slices"
	"testing"
)

// A change given a body of a type it does not expect is an error (a 500), never a panic.
func TestReshapeChecksTheBodyType(t *testing.T) {
	before := reshape(func(s []string) []string { return append(s, "older") })
	if _, err := before(42); err == nil {
		t.Fatalf("a body of another type must be an error")
	}
	if got, err := before([]string{"a"}); err != nil || !slices.Equal(got.([]string), []string{"a", "older"}) {
		t.Fatalf("reshape: %v, %v", got, err)
	}
}

// A change naming a route the table lacks stops the server from starting.
func TestChangesNameRoutesOfTheTable(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatalf("checkChanges accepted changes naming no route")
		}
	}()
	checkChanges(map[Route]*route{})
}
