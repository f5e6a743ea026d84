package consoleusers

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with Argon2id (RFC 9106), memory-hard, from
// golang.org/x/crypto. x/crypto has the function but no encoding of its
// parameters, so the hash is kept in the PHC string format that other
// Argon2 implementations read ($argon2id$v=19$m=..,t=..,p=..$salt$hash),
// written and parsed here (a dozen lines; no well-kept Go library does
// only that).
//
// The parameters are OWASP's first recommendation for Argon2id (19 MiB,
// two passes, one lane): a sign-in costs about 20 ms of one core and
// 19 MiB, which the sign-in rate limit keeps from being a lever.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
	// maxArgonMemoryKiB bounds what a stored hash may ask for when it is
	// checked (a hash written with other parameters still verifies, but a
	// corrupted one cannot make a sign-in allocate gigabytes).
	maxArgonMemoryKiB = 256 * 1024
	maxArgonTime      = 10
)

var b64 = base64.RawStdEncoding

// HashPassword returns the PHC string of password under a fresh salt.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// phc is a parsed Argon2id PHC string.
type phc struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

var errBadHash = errors.New("consoleusers: not an argon2id hash this server can check")

// parsePHC parses an Argon2id PHC string, refusing parameters outside the
// bounds a sign-in may spend.
func parsePHC(s string) (phc, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, errBadHash
	}
	var p phc
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return phc{}, errBadHash
	}
	for i, want := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], want)
		if !ok {
			return phc{}, errBadHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return phc{}, errBadHash
		}
		switch i {
		case 0:
			p.memory = uint32(n)
		case 1:
			p.time = uint32(n)
		case 2:
			if n > 255 {
				return phc{}, errBadHash
			}
			p.threads = uint8(n)
		}
	}
	if p.memory > maxArgonMemoryKiB || p.time > maxArgonTime || p.memory < 8*uint32(p.threads) {
		return phc{}, errBadHash
	}
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 || len(p.salt) > 64 {
		return phc{}, errBadHash
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return phc{}, errBadHash
	}
	return p, nil
}

// checkPassword reports whether password matches the PHC hash, comparing
// in constant time.
func checkPassword(hash, password string) (bool, error) {
	p, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

// GeneratePassword returns a random password of 20 characters (about 120
// bits), for new users and resets.
func GeneratePassword() (string, error) {
	b := make([]byte, 15)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
