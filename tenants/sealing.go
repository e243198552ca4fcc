package tenants

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// Secrets at rest. The secrets Tenantry must be able to read back (connection secrets, SSO
// client secrets, webhook signing secrets, token signing private keys) are sealed with the
// operator's secret key when one is configured (--secret-key-file): envelope encryption, each
// value under a data key of its own, that data key wrapped by the secret key, the secret key's
// id stored beside it so the secret key can be rotated. Without a key file values are stored as
// they are, and a sealed value cannot be opened.
//
// A sealed value is "tsealed1." + key id + "." + base64url(nonce | wrapped data key | nonce |
// ciphertext), all AES-256-GCM. The additional data binds it to its column and row, so a sealed
// value moved to another row does not open.

const sealedPrefix = "tsealed1."

// plainPrefix marks a value stored in clear that would otherwise read as sealed (a secret a
// caller chose to begin with "tsealed1."), so no value given can pass for a sealed one.
const plainPrefix = "tplain1."

// SecretKeySize is the size of a secret key: 32 random bytes (AES-256).
const SecretKeySize = 32

type secretKey struct {
	id  string
	aes cipher.AEAD
}

// Sealer seals and opens secrets at rest with the keys of one key file: the first key seals,
// every key opens. A nil *Sealer stores values as they are. It re-reads its file when the file
// changes (checked when sealing, and when opening a value of an unknown key id), so a rotation
// reaches a running server without a restart.
type Sealer struct {
	path string

	mu      sync.RWMutex
	keys    []secretKey
	modTime time.Time
	size    int64
}

// LoadSealer reads a key file: one base64 key of 32 bytes per line, the current key first.
func LoadSealer(path string) (*Sealer, error) {
	s := &Sealer{path: path}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// GenerateSecretKey returns a key file line: the base64 of 32 random bytes.
func GenerateSecretKey() string {
	b := make([]byte, SecretKeySize)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// ParseSecretKeys reads the lines of a key file (blank lines and # comments are skipped) and
// returns each key's id, the current one first.
func ParseSecretKeys(data []byte) ([]string, error) {
	keys, err := parseSecretKeys(data)
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.id
	}
	return ids, err
}

func parseSecretKeys(data []byte) ([]secretKey, error) {
	var keys []secretKey
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != SecretKeySize {
			return nil, fmt.Errorf("line %d of the secret key file is not the base64 of %d bytes: write one with `tenantry secret-key generate`", n+1, SecretKeySize)
		}
		block, _ := aes.NewCipher(raw)
		gcm, _ := cipher.NewGCM(block)
		sum := sha256.Sum256(append([]byte("tenantry secret key id\x00"), raw...))
		keys = append(keys, secretKey{id: hex.EncodeToString(sum[:8]), aes: gcm})
	}
	if len(keys) == 0 {
		return nil, errors.New("the secret key file holds no key: write one with `tenantry secret-key generate`")
	}
	return keys, nil
}

func (s *Sealer) reload() error {
	st, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("secret key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secret key file %s is readable by others (mode %o): chmod 600 it", s.path, st.Mode().Perm())
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("secret key file: %w", err)
	}
	keys, err := parseSecretKeys(data)
	if err != nil {
		return fmt.Errorf("secret key file %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.keys, s.modTime, s.size = keys, st.ModTime(), st.Size()
	s.mu.Unlock()
	return nil
}

// refresh re-reads the key file when it has changed since it was read.
func (s *Sealer) refresh() error {
	st, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("secret key file: %w", err)
	}
	s.mu.RLock()
	same := st.ModTime().Equal(s.modTime) && st.Size() == s.size
	s.mu.RUnlock()
	if same {
		return nil
	}
	return s.reload()
}

// CurrentKeyID is the id of the key that seals; "" for a nil Sealer.
func (s *Sealer) CurrentKeyID() string {
	if s == nil {
		return ""
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keys[0].id
}

func (s *Sealer) key(id string) (secretKey, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, k := range s.keys {
		if k.id == id {
			return k, true
		}
	}
	return secretKey{}, false
}

// IsSealed reports whether a stored value is sealed, and under which key id.
func IsSealed(stored []byte) (keyID string, ok bool) {
	rest, ok := bytes.CutPrefix(stored, []byte(sealedPrefix))
	if !ok {
		return "", false
	}
	id, _, ok := bytes.Cut(rest, []byte("."))
	return string(id), ok
}

// Seal returns the stored form of plain, bound to where it is stored (such as
// "webhooks.secret/<id>"). A nil Sealer returns plain itself (marked as plain if it would
// read as sealed).
func (s *Sealer) Seal(plain []byte, where string) ([]byte, error) {
	if s == nil {
		if bytes.HasPrefix(plain, []byte(sealedPrefix)) || bytes.HasPrefix(plain, []byte(plainPrefix)) {
			return append([]byte(plainPrefix), plain...), nil
		}
		return plain, nil
	}
	if err := s.refresh(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	k := s.keys[0]
	s.mu.RUnlock()
	dataKey := make([]byte, SecretKeySize)
	rand.Read(dataKey)
	block, _ := aes.NewCipher(dataKey)
	gcm, _ := cipher.NewGCM(block)
	ad := []byte(k.id + "\x00" + where)
	out := make([]byte, 0, 2*gcm.NonceSize()+len(dataKey)+len(plain)+2*gcm.Overhead())
	n1, n2 := nonce(k.aes), nonce(gcm)
	out = k.aes.Seal(append(out, n1...), n1, dataKey, ad)
	out = gcm.Seal(append(out, n2...), n2, plain, ad)
	return fmt.Appendf(nil, "%s%s.%s", sealedPrefix, k.id, base64.RawURLEncoding.EncodeToString(out)), nil
}

func nonce(a cipher.AEAD) []byte {
	n := make([]byte, a.NonceSize())
	rand.Read(n)
	return n
}

// Open returns the value a stored form holds: a sealed value opened, anything else as it is.
// A value sealed under a key the file does not have (or with no key file) is an error that
// says which key it needs.
func (s *Sealer) Open(stored []byte, where string) ([]byte, error) {
	id, sealed := IsSealed(stored)
	if !sealed {
		return bytes.TrimPrefix(stored, []byte(plainPrefix)), nil
	}
	if s == nil {
		return nil, fmt.Errorf("a secret is sealed with secret key %s, and no --secret-key-file is configured", id)
	}
	k, ok := s.key(id)
	if !ok {
		if err := s.reload(); err != nil {
			return nil, err
		}
		if k, ok = s.key(id); !ok {
			return nil, fmt.Errorf("a secret is sealed with secret key %s, which the secret key file %s does not hold", id, s.path)
		}
	}
	raw, err := base64.RawURLEncoding.DecodeString(string(stored[len(sealedPrefix)+len(id)+1:]))
	ns, ws := k.aes.NonceSize(), SecretKeySize+k.aes.Overhead()
	if err != nil || len(raw) < 2*ns+ws {
		return nil, fmt.Errorf("a sealed secret (%s) is damaged", where)
	}
	ad := []byte(id + "\x00" + where)
	dataKey, err := k.aes.Open(nil, raw[:ns], raw[ns:ns+ws], ad)
	if err != nil {
		return nil, fmt.Errorf("a sealed secret (%s) does not open with key %s: damaged, or moved from another row", where, id)
	}
	block, _ := aes.NewCipher(dataKey)
	gcm, _ := cipher.NewGCM(block)
	rest := raw[ns+ws:]
	plain, err := gcm.Open(nil, rest[:gcm.NonceSize()], rest[gcm.NonceSize():], ad)
	if err != nil {
		return nil, fmt.Errorf("a sealed secret (%s) is damaged", where)
	}
	return plain, nil
}

// SealString and OpenString are Seal and Open for text columns; "" (no secret) stays "".
func (s *Sealer) SealString(plain, where string) (string, error) {
	if plain == "" {
		return "", nil
	}
	b, err := s.Seal([]byte(plain), where)
	return string(b), err
}

func (s *Sealer) OpenString(stored, where string) (string, error) {
	b, err := s.Open([]byte(stored), where)
	return string(b), err
}

// SealedAt names where a secret is stored (its table, column and row), which its seal is bound
// to: a sealed value copied to another row or column does not open.
func SealedAt(table, column, id string) string { return table + "." + column + "/" + id }

// secretColumns are the columns that hold secrets Tenantry reads back; binary ones are BLOB
// (BYTEA), the others text. Connections' secrets are split from their configuration first.
var secretColumns = []struct {
	table, column string
	binary        bool
}{
	{"organizations", "client_secret", false},
	{"webhooks", "secret", false},
	{"signing_keys", "private_key", true},
	{"connections", "secrets", false},
}

// SealSecrets brings every stored secret under the sealer's current key, in one transaction:
// values stored in clear (before a key file was configured) are sealed, values sealed under an
// older key are sealed again, and connections stored before their secrets were kept apart are
// split. With a nil sealer it only splits, and a sealed value is an error naming its key: the
// server must not start without the key its secrets need. It returns how many values changed.
func SealSecrets(ctx context.Context, db *sqlx.DB, sealer *Sealer) (int, error) {
	changed := 0
	err := (Conn{DB: db}).Write(ctx, func(tx *Tx) error {
		n, err := splitLegacyConnections(ctx, tx, sealer)
		if err != nil {
			return err
		}
		changed += n
		current := sealer.CurrentKeyID()
		for _, col := range secretColumns {
			var rows []struct {
				ID    string `db:"id"`
				Value []byte `db:"value"`
			}
			if err := sqlx.SelectContext(ctx, tx, &rows, `SELECT id, `+col.column+` AS value FROM `+col.table+
				` WHERE `+col.column+` IS NOT NULL`); err != nil {
				return fmt.Errorf("read %s.%s: %w", col.table, col.column, err)
			}
			for _, r := range rows {
				id, sealed := IsSealed(r.Value)
				if len(r.Value) == 0 || (sealed && id == current) || (!sealed && sealer == nil) {
					continue
				}
				where := SealedAt(col.table, col.column, r.ID)
				plain, err := sealer.Open(r.Value, where)
				if err != nil {
					return err
				}
				resealed, err := sealer.Seal(plain, where)
				if err != nil {
					return err
				}
				var v any = string(resealed)
				if col.binary {
					v = resealed
				}
				var was any = string(r.Value)
				if col.binary {
					was = r.Value
				}
				// Only if it is still what was read: a change committed meanwhile (by a replica)
				// is newer, and was sealed by it.
				res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE `+col.table+` SET `+col.column+` = ? WHERE id = ? AND `+col.column+` = ?`), v, r.ID, was)
				if err != nil {
					return fmt.Errorf("seal %s.%s: %w", col.table, col.column, err)
				}
				if n, _ := res.RowsAffected(); n == 1 {
					changed++
				}
			}
		}
		return nil
	})
	return changed, err
}

// splitLegacyConnections moves the secrets of connections stored before secrets were kept
// apart out of their configuration.
func splitLegacyConnections(ctx context.Context, tx *Tx, sealer *Sealer) (int, error) {
	var rows []connectionRow
	if err := sqlx.SelectContext(ctx, tx, &rows, connectionSelect+` WHERE c.secrets IS NULL AND c.parent_id IS NULL`); err != nil {
		return 0, fmt.Errorf("read connections: %w", err)
	}
	changed := 0
	for _, r := range rows {
		cfg, secrets, err := r.split(sealer)
		if err != nil {
			return 0, err
		}
		public, err := encodeJSON(cfg)
		if err != nil {
			return 0, err
		}
		sealed, err := sealSecrets(sealer, r.ID, secrets)
		if err != nil {
			return 0, err
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE connections SET configuration = ?, secrets = ?
			WHERE id = ? AND secrets IS NULL AND configuration = ?`), public, sealed, r.ID, r.Config)
		if err != nil {
			return 0, fmt.Errorf("split connection secrets: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			changed++
		}
	}
	return changed, nil
}
