package tenants

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// PageQuery asks for one page of a list: at most Limit items after the item named by the
// cursor. Lists are ordered by id, which is a time-ordered UUID (v7), so this is creation order
// and a keyset query: the cost of a page does not grow with how far into the list it is.
type PageQuery struct {
	Limit int
	After string // the id of the last item of the previous page; "" for the first page
}

// Page is one page of a list, as every list of the domain returns it: its items, and the
// token of the next page ("" on the last).
type Page[T any] struct {
	Items []T
	Next  string
}

// DefaultPageLimit and MaxPageLimit bound PageQuery.Limit.
const (
	DefaultPageLimit = 50
	MaxPageLimit     = 100
)

// ParsePage reads the limit and page_token query parameters (limit 1..100, default 50).
func ParsePage(limit, token string) (PageQuery, error) {
	var errs FieldErrors
	p := ReadPage(&errs, limit, token, DefaultPageLimit)
	return p, errs.Err()
}

// ReadPage reads limit and page_token into a PageQuery, adding what is wrong with them to errs
// (for lists that check other parameters too).
func ReadPage(errs *FieldErrors, limit, token string, defaultLimit int) PageQuery {
	p := PageQuery{Limit: defaultLimit}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > MaxPageLimit {
			errs.Add("limit", "must be a whole number from 1 to "+strconv.Itoa(MaxPageLimit))
		}
		p.Limit = n
	}
	if token != "" {
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !strings.HasPrefix(string(raw), "a:") || !validID(string(raw[2:])) {
			errs.Add("page_token", "is not a page token this server issued; pass pagination.next_page_token from the previous page")
		} else {
			p.After = string(raw[2:])
		}
	}
	return p
}

// NextPageToken is the token for the page after one whose last item has id lastID.
func NextPageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("a:" + lastID))
}

// TrimPage trims a result fetched with Limit+1 rows to Limit and returns the token of the next
// page ("" when this is the last).
func TrimPage[T any](rows []T, limit int, id func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, NextPageToken(id(rows[len(rows)-1]))
}
