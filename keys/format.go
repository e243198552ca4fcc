// Package keys owns credentials: the key format, minting, hashing and verification. It turns a
// bearer string into a tenants.Principal.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"hash/crc32"
	"strings"

	"github.com/tenantry/tenantry/tenants"
)

// A key value is <prefix><43 random base62 characters><6 base62 characters of CRC-32>, like
// GitHub's token format: the prefix says what kind of key it is and lets secret scanners find
// leaked keys; 43 base62 characters carry 256 bits from crypto/rand; the checksum rejects typos
// and junk without touching the database.
const (
	bodyLen     = 43
	checksumLen = 6
	alphabet    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// Prefixes by credential kind.
var prefixes = map[tenants.CredentialKind]string{
	tenants.KindPartner:      "tpk_",
	tenants.KindUser:         "tuk_",
	tenants.KindOrganization: "tok_",
}

const prefixLen = 4

// Length is the length of every key value.
const Length = prefixLen + bodyLen + checksumLen

// generate returns a new key value of the given kind.
func generate(kind tenants.CredentialKind) string {
	var b strings.Builder
	b.Grow(Length)
	b.WriteString(prefixes[kind])
	// Rejection sampling keeps every character uniform: bytes >= 248 (4*62) are discarded.
	buf := make([]byte, 64)
	for n := 0; n < bodyLen; {
		rand.Read(buf) // never fails (crypto/rand panics rather than return an error)
		for _, c := range buf {
			if c < 248 && n < bodyLen {
				b.WriteByte(alphabet[c%62])
				n++
			}
		}
	}
	b.WriteString(checksum(b.String()))
	return b.String()
}

// checksum encodes the CRC-32 of s as 6 base62 characters (62^6 > 2^32).
func checksum(s string) string {
	v := crc32.ChecksumIEEE([]byte(s))
	var out [checksumLen]byte
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = alphabet[v%62]
		v /= 62
	}
	return string(out[:])
}

// parse reports the kind of a well-formed key value, or false for anything else.
func parse(value string) (tenants.CredentialKind, bool) {
	if len(value) != Length {
		return "", false
	}
	var kind tenants.CredentialKind
	switch value[:prefixLen] {
	case "tpk_":
		kind = tenants.KindPartner
	case "tuk_":
		kind = tenants.KindUser
	case "tok_":
		kind = tenants.KindOrganization
	default:
		return "", false
	}
	for i := prefixLen; i < Length; i++ {
		if strings.IndexByte(alphabet, value[i]) < 0 {
			return "", false
		}
	}
	if checksum(value[:Length-checksumLen]) != value[Length-checksumLen:] {
		return "", false
	}
	return kind, true
}

// hash is what the database stores and looks keys up by. The values carry 256 bits of entropy,
// so a fast hash is enough: a slow one (bcrypt, argon2) would be paid on every request.
func hash(value string) []byte {
	sum := sha256.Sum256([]byte(value))
	return sum[:]
}

// hint is a non-secret reminder of a key: its prefix and last four characters.
func hint(value string) string {
	return value[:prefixLen] + "..." + value[len(value)-4:]
}
