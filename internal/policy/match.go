package policy

import "strings"

// pattern is a compiled Action or Resource entry.
type pattern struct {
	text  string // normalised: actions lowercased; ARNs with acs:<service> lowercased
	any   bool   // "*": matches everything without scanning
	exact bool   // no wildcard: plain comparison

	// Literal parts of a wildcard pattern that any match must contain:
	// checking them first (HasPrefix, HasSuffix, Contains) rejects most
	// non-matching ARNs without running the matcher.
	prefix, suffix, must string
}

func compileAction(a string) pattern {
	a = strings.ToLower(a) // RAM treats action names case-insensitively
	return pattern{text: a, any: a == "*", exact: !strings.ContainsAny(a, "*?")}
}

func compileResource(r string) pattern {
	r = foldService(r)
	p := pattern{text: r, any: r == "*", exact: !strings.ContainsAny(r, "*?")}
	if !p.exact {
		first := strings.IndexAny(r, "*?")
		last := strings.LastIndexAny(r, "*?")
		p.prefix, p.suffix = r[:first], r[last+1:]
		for _, part := range strings.FieldsFunc(r[first:last+1], func(c rune) bool { return c == '*' || c == '?' }) {
			if len(part) > len(p.must) {
				p.must = part
			}
		}
	}
	return p
}

// foldService lowercases the "acs:<service>" head of an ARN, which RAM
// compares case-insensitively; the rest (region, account, resource path) is
// case-sensitive because secret names are. It allocates only when the head
// has an upper-case letter.
func foldService(arn string) string {
	head := arn
	if i := strings.IndexByte(arn, ':'); i >= 0 {
		if j := strings.IndexByte(arn[i+1:], ':'); j >= 0 {
			head = arn[:i+1+j]
		}
	}
	for k := 0; k < len(head); k++ {
		if c := head[k]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(head) + arn[len(head):]
		}
	}
	return arn
}

// matchAction matches a lowercased action pattern against a request action
// in any case, without allocating.
func (p *pattern) matchAction(action string) bool {
	if p.any {
		return true
	}
	if p.exact {
		return asciiEqualFold(p.text, action)
	}
	return glob(p.text, action, true)
}

// matchResource matches against a resource already passed through
// foldService.
func (p *pattern) matchResource(res string) bool {
	if p.any {
		return true
	}
	if p.exact {
		return p.text == res
	}
	if !strings.HasPrefix(res, p.prefix) || !strings.HasSuffix(res, p.suffix) ||
		(p.must != "" && !strings.Contains(res[len(p.prefix):], p.must)) {
		return false
	}
	return glob(p.text, res, false)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// glob reports whether s matches pattern p, where '*' matches any run of
// bytes (including ':' and '/') and '?' exactly one character. With fold,
// s is compared ASCII-case-insensitively (p is already lowercase). It runs
// in O(len(p)·len(s)) at worst — backtracking only to the last '*' — so a
// hostile pattern cannot make evaluation exponential.
func glob(p, s string, fold bool) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				star, mark = pi, si
				pi++
				continue
			case '?':
				pi++
				si += runeLen(s, si)
				continue
			default:
				sc := s[si]
				if fold {
					sc = lower(sc)
				}
				if c == sc {
					pi++
					si++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		// Let the last '*' swallow one more character and retry.
		mark += runeLen(s, mark)
		pi, si = star+1, mark
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// runeLen is the length of the UTF-8 sequence at s[i], so '?' matches one
// character as a user sees it, not one byte.
func runeLen(s string, i int) int {
	c := s[i]
	n := 1
	switch {
	case c >= 0xF0:
		n = 4
	case c >= 0xE0:
		n = 3
	case c >= 0xC0:
		n = 2
	}
	if i+n > len(s) {
		return len(s) - i
	}
	return n
}

// asciiEqualFold compares lowercase p with s ignoring ASCII case only:
// strings.EqualFold's Unicode folding would let "\u212a" (Kelvin sign) match
// "k", which no action name means.
func asciiEqualFold(p, s string) bool {
	if len(p) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if p[i] != lower(s[i]) {
			return false
		}
	}
	return true
}
