package tenants

import (
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckText reports what is wrong with a free-text value: too long, invalid UTF-8 or a control
// character. Empty is fine here; callers that require a value check for it.
func CheckText(s string, max int) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case utf8.RuneCountInString(s) > max:
		return "must be at most " + strconv.Itoa(max) + " characters"
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "must not contain control characters"
	case strings.IndexFunc(s, invisible) >= 0:
		return "must not contain invisible or text-direction characters (such as U+200B or U+202E)"
	case strings.ContainsRune(s, utf8.RuneError):
		return "must not contain U+FFFD, the mark of text that was not valid UTF-8"
	}
	return ""
}

// invisible reports characters that hide or reorder text: zero-width spaces and marks, the
// byte-order mark, and bidirectional controls. They make names that read alike but differ.
func invisible(r rune) bool {
	switch {
	case r >= 0x200B && r <= 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2060 && r <= 0x2069,
		r == 0xFEFF, r == 0x061C, r == 0x00AD:
		return true
	}
	return false
}

// checkName validates a required, trimmed display name of 1..max characters.
func checkName(s string, max int) string {
	if s == "" {
		return "is required and must not be blank"
	}
	return CheckText(s, max)
}

// CheckEmail accepts a bare address (no display name) of at most 254 characters.
func CheckEmail(s string) string {
	if s == "" {
		return "is required"
	}
	if msg := CheckText(s, 254); msg != "" {
		return msg
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@')+1:], ".") {
		return "must be a valid email address such as ada@example.com"
	}
	return ""
}

// checkURL accepts an absolute http or https URL with a host.
func checkURL(s string) string {
	if msg := CheckText(s, 2048); msg != "" {
		return msg
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "must be an absolute http or https URL such as https://login.example.com"
	}
	if u.User != nil {
		return "must not contain a user name or password"
	}
	return ""
}

// checkDomain accepts a DNS name such as example.com.
func checkDomain(s string) string {
	if len(s) > 253 {
		return "must be at most 253 characters"
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return "must be a domain name such as example.com"
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "must be a domain name such as example.com"
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return "must be a domain name such as example.com"
			}
		}
	}
	return ""
}
