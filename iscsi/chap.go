package iscsi

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// CHAPAlgorithm is a CHAP_A value: a hash algorithm number from the IANA
// "PPP Authentication Algorithms" registry (RFC 7143 12.1.3, RFC 1994).
type CHAPAlgorithm byte

// CHAP algorithms odxtgt implements.
const (
	CHAPMD5     CHAPAlgorithm = 5
	CHAPSHA1    CHAPAlgorithm = 6
	CHAPSHA256  CHAPAlgorithm = 7
	CHAPSHA3256 CHAPAlgorithm = 8
)

// DefaultCHAPAlgorithms is the preference order offered or accepted when no
// other is configured: strongest first, MD5 last because RFC 7143 makes it
// the one every implementation supports.
var DefaultCHAPAlgorithms = []CHAPAlgorithm{CHAPSHA3256, CHAPSHA256, CHAPSHA1, CHAPMD5}

// MinCHAPChallengeLength is the shortest challenge NewCHAPChallenge makes.
const MinCHAPChallengeLength = 16

// ErrCHAPUnsupportedAlgorithm reports a CHAP_A value odxtgt cannot compute.
var ErrCHAPUnsupportedAlgorithm = errors.New("iscsi: unsupported CHAP algorithm")

// ErrCHAPValue reports a malformed CHAP_I, CHAP_C or CHAP_R value.
var ErrCHAPValue = errors.New("iscsi: malformed CHAP value")

func (a CHAPAlgorithm) String() string {
	switch a {
	case CHAPMD5:
		return "MD5"
	case CHAPSHA1:
		return "SHA-1"
	case CHAPSHA256:
		return "SHA-256"
	case CHAPSHA3256:
		return "SHA3-256"
	}
	return fmt.Sprintf("CHAP_A(%d)", byte(a))
}

// Supported reports whether odxtgt implements the algorithm.
func (a CHAPAlgorithm) Supported() bool { return a.DigestLength() != 0 }

// DigestLength is the size of the algorithm's response in bytes, 0 when
// unsupported.
func (a CHAPAlgorithm) DigestLength() int {
	switch a {
	case CHAPMD5:
		return md5.Size
	case CHAPSHA1:
		return sha1.Size
	case CHAPSHA256:
		return sha256.Size
	case CHAPSHA3256:
		return 32
	}
	return 0
}

func (a CHAPAlgorithm) newHash() hash.Hash {
	switch a {
	case CHAPMD5:
		return md5.New()
	case CHAPSHA1:
		return sha1.New()
	case CHAPSHA256:
		return sha256.New()
	case CHAPSHA3256:
		return sha3.New256()
	}
	return nil
}

// CHAPResponse computes the CHAP response H(identifier || secret ||
// challenge) of RFC 1994 4.1 with the given algorithm.
func CHAPResponse(alg CHAPAlgorithm, id byte, secret, challenge []byte) ([]byte, error) {
	h := alg.newHash()
	if h == nil {
		return nil, fmt.Errorf("%w: %d", ErrCHAPUnsupportedAlgorithm, byte(alg))
	}
	h.Write([]byte{id})
	h.Write(secret)
	h.Write(challenge)
	return h.Sum(nil), nil
}

// VerifyCHAPResponse reports whether response is the correct answer to
// challenge for the identifier and secret, comparing in constant time. An
// unsupported algorithm never verifies.
func VerifyCHAPResponse(alg CHAPAlgorithm, id byte, secret, challenge, response []byte) bool {
	want, err := CHAPResponse(alg, id, secret, challenge)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(want, response) == 1
}

// NewCHAPChallenge returns a random challenge from crypto/rand as long as
// the algorithm's digest and at least MinCHAPChallengeLength bytes, and a
// random identifier. Challenges are never reused (RFC 1994 2.3).
func NewCHAPChallenge(alg CHAPAlgorithm) (id byte, challenge []byte, err error) {
	n := alg.DigestLength()
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: %d", ErrCHAPUnsupportedAlgorithm, byte(alg))
	}
	buf := make([]byte, 1+max(n, MinCHAPChallengeLength))
	if _, err := rand.Read(buf); err != nil {
		return 0, nil, err
	}
	return buf[0], buf[1:], nil
}

// SelectCHAPAlgorithm returns the first algorithm in the initiator's CHAP_A
// list that is also in supported (RFC 7143 12.1.3: the target picks one of
// the offered values). Members that are not numbers or not supported are
// skipped; ok is false when nothing matches, and the target then answers
// CHAP_A=Reject.
func SelectCHAPAlgorithm(offered string, supported []CHAPAlgorithm) (alg CHAPAlgorithm, ok bool) {
	for member := range strings.SplitSeq(offered, ",") {
		v, err := ParseNumber(member)
		if err != nil || v > 255 {
			continue
		}
		for _, s := range supported {
			if CHAPAlgorithm(v) == s && s.Supported() {
				return s, true
			}
		}
	}
	return 0, false
}

// FormatCHAPAlgorithms encodes algorithms as a CHAP_A list-of-values.
func FormatCHAPAlgorithms(algs []CHAPAlgorithm) string {
	parts := make([]string, len(algs))
	for i, a := range algs {
		parts[i] = strconv.Itoa(int(a))
	}
	return FormatList(parts)
}

// ParseCHAPAlgorithm decodes a single CHAP_A value, as a target's answer
// carries, and checks that it is supported.
func ParseCHAPAlgorithm(s string) (CHAPAlgorithm, error) {
	v, err := ParseNumber(s)
	if err != nil || v > 255 {
		return 0, fmt.Errorf("%w: CHAP_A=%.40q", ErrCHAPValue, s)
	}
	a := CHAPAlgorithm(v)
	if !a.Supported() {
		return 0, fmt.Errorf("%w: %d", ErrCHAPUnsupportedAlgorithm, v)
	}
	return a, nil
}

// ParseCHAPIdentifier decodes CHAP_I, a number from 0 to 255.
func ParseCHAPIdentifier(s string) (byte, error) {
	v, err := ParseNumber(s)
	if err != nil || v > 255 {
		return 0, fmt.Errorf("%w: CHAP_I=%.40q", ErrCHAPValue, s)
	}
	return byte(v), nil
}

// ParseCHAPBinary decodes CHAP_C or CHAP_R: a non-empty large-binary-value
// (hex- or base64-constant) of at most MaxLargeBinaryLength bytes (RFC 7143
// 12.1.3).
func ParseCHAPBinary(s string) ([]byte, error) {
	b, err := DecodeBinary(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCHAPValue, err)
	}
	if len(b) > MaxLargeBinaryLength {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrCHAPValue, len(b), MaxLargeBinaryLength)
	}
	return b, nil
}
