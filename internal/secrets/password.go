package secrets

import (
	"crypto/rand"
	"math/big"
	"strings"
)

// PasswordInput holds the GetRandomPassword parameters. Length 0 means 32.
type PasswordInput struct {
	Length                  int
	ExcludeCharacters       string
	ExcludeLowercase        bool
	ExcludeUppercase        bool
	ExcludeNumbers          bool
	ExcludePunctuation      bool
	RequireEachIncludedType bool
}

// Character classes of GetRandomPassword.
const (
	lowerChars = "abcdefghijklmnopqrstuvwxyz"
	upperChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars = "0123456789"
	punctChars = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)

// RandomPassword returns a password drawn uniformly with crypto/rand from
// the included classes, minus ExcludeCharacters. With
// RequireEachIncludedType every class that still has characters appears at
// least once.
func RandomPassword(in PasswordInput) (string, error) {
	n := in.Length
	if n == 0 {
		n = 32
	}
	if n < 8 || n > 128 {
		return "", invalid("The parameter PasswordLength must be between 8 and 128.")
	}
	var classes []string
	for _, c := range []struct {
		chars   string
		exclude bool
	}{
		{lowerChars, in.ExcludeLowercase},
		{upperChars, in.ExcludeUppercase},
		{digitChars, in.ExcludeNumbers},
		{punctChars, in.ExcludePunctuation},
	} {
		if c.exclude {
			continue
		}
		kept := strings.Map(func(r rune) rune {
			if strings.ContainsRune(in.ExcludeCharacters, r) {
				return -1
			}
			return r
		}, c.chars)
		if kept != "" {
			classes = append(classes, kept)
		}
	}
	if len(classes) == 0 {
		return "", invalid("The exclusions leave no characters to build a password from.")
	}
	pool := strings.Join(classes, "")
	out := make([]byte, 0, n)
	if in.RequireEachIncludedType {
		for _, c := range classes {
			ch, err := pick(c)
			if err != nil {
				return "", err
			}
			out = append(out, ch)
		}
	}
	for len(out) < n {
		ch, err := pick(pool)
		if err != nil {
			return "", err
		}
		out = append(out, ch)
	}
	// Shuffle so that the required characters are not always in front.
	for i := len(out) - 1; i > 0; i-- {
		j, err := randInt(i + 1)
		if err != nil {
			return "", err
		}
		out[i], out[j] = out[j], out[i]
	}
	return string(out), nil
}

func pick(chars string) (byte, error) {
	i, err := randInt(len(chars))
	if err != nil {
		return 0, err
	}
	return chars[i], nil
}

func randInt(n int) (int, error) {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0, internal(err, "generating a password")
	}
	return int(v.Int64()), nil
}
