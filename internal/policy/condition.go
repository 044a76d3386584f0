package policy

import (
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Condition is one (operator, key, values) triple of a Condition block.
// Values of one condition are ORed; conditions of a statement are ANDed.
type Condition struct {
	Operator string
	Key      string
	Values   []string

	op    *operator
	key   string // lowercased: condition key names are case-insensitive
	nums  []float64
	times []time.Time
	bools []bool
	nets  []netip.Prefix
}

type opKind int

const (
	kString opKind = iota
	kStringIgnoreCase
	kStringLike
	kNumeric
	kDate
	kBool
	kIP
)

type cmp int

const (
	cmpEq cmp = iota
	cmpLt
	cmpLe
	cmpGt
	cmpGe
)

// operator describes a condition operator: its value type, comparison and
// whether it is the negation of a positive operator. A negated operator is
// exactly NOT(positive): it holds when no request value matches any policy
// value, including when the key is absent from the request.
type operator struct {
	name   string
	kind   opKind
	cmp    cmp
	negate bool
}

var operators = map[string]*operator{}

func init() {
	for _, o := range []operator{
		{"StringEquals", kString, cmpEq, false},
		{"StringNotEquals", kString, cmpEq, true},
		{"StringEqualsIgnoreCase", kStringIgnoreCase, cmpEq, false},
		{"StringNotEqualsIgnoreCase", kStringIgnoreCase, cmpEq, true},
		{"StringLike", kStringLike, cmpEq, false},
		{"StringNotLike", kStringLike, cmpEq, true},
		{"NumericEquals", kNumeric, cmpEq, false},
		{"NumericNotEquals", kNumeric, cmpEq, true},
		{"NumericLessThan", kNumeric, cmpLt, false},
		{"NumericLessThanEquals", kNumeric, cmpLe, false},
		{"NumericGreaterThan", kNumeric, cmpGt, false},
		{"NumericGreaterThanEquals", kNumeric, cmpGe, false},
		{"DateEquals", kDate, cmpEq, false},
		{"DateNotEquals", kDate, cmpEq, true},
		{"DateLessThan", kDate, cmpLt, false},
		{"DateLessThanEquals", kDate, cmpLe, false},
		{"DateGreaterThan", kDate, cmpGt, false},
		{"DateGreaterThanEquals", kDate, cmpGe, false},
		{"Bool", kBool, cmpEq, false},
		{"IpAddress", kIP, cmpEq, false},
		{"NotIpAddress", kIP, cmpEq, true},
	} {
		o := o
		operators[o.name] = &o
	}
}

// Operators lists the supported condition operators, sorted.
func Operators() []string {
	out := make([]string, 0, len(operators))
	for n := range operators {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func parseConditions(v any, at string) ([]Condition, error) {
	obj, ok := v.([]member)
	if !ok {
		return nil, malformed("%s must be an object of {operator: {key: values}}, not %s", at, jsonType(v))
	}
	if len(obj) == 0 {
		return nil, malformed("%s must not be empty", at)
	}
	var out []Condition
	for _, om := range obj {
		op, ok := operators[om.name]
		if !ok {
			for n := range operators {
				if strings.EqualFold(n, om.name) {
					return nil, malformed("unknown condition operator %q in %s (operators are case-sensitive: did you mean %q?)", om.name, at, n)
				}
			}
			return nil, malformed("unknown condition operator %q in %s", om.name, at)
		}
		keys, ok := om.value.([]member)
		if !ok {
			return nil, malformed("%s.%s must be an object of {key: values}, not %s", at, om.name, jsonType(om.value))
		}
		if len(keys) == 0 {
			return nil, malformed("%s.%s must name at least one condition key", at, om.name)
		}
		for _, km := range keys {
			c, err := compileCondition(op, km, at+"."+om.name)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func compileCondition(op *operator, km member, at string) (Condition, error) {
	c := Condition{Operator: op.name, Key: km.name, op: op, key: strings.ToLower(km.name)}
	if !validKey(km.name) {
		return c, malformed("%s has invalid condition key %q (expected <service>:<name>, e.g. \"acs:SourceIp\")", at, km.name)
	}
	at += "[" + strconvQuote(km.name) + "]"
	var raw []any
	switch t := km.value.(type) {
	case []any:
		if len(t) == 0 {
			return c, malformed("%s must have at least one value", at)
		}
		raw = t
	default:
		raw = []any{t}
	}
	for i, rv := range raw {
		s, ok := scalarString(rv)
		if !ok {
			return c, malformed("%s value %d must be a string, number or boolean, not %s", at, i, jsonType(rv))
		}
		c.Values = append(c.Values, s)
		switch op.kind {
		case kNumeric:
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return c, malformed("%s value %q is not a number", at, s)
			}
			c.nums = append(c.nums, f)
		case kDate:
			tm, err := parseTime(s)
			if err != nil {
				return c, malformed("%s value %q is not a date-time (use ISO 8601 / RFC 3339, e.g. \"2026-01-01T00:00:00Z\")", at, s)
			}
			c.times = append(c.times, tm)
		case kBool:
			switch strings.ToLower(s) {
			case "true":
				c.bools = append(c.bools, true)
			case "false":
				c.bools = append(c.bools, false)
			default:
				return c, malformed("%s value %q must be true or false", at, s)
			}
		case kIP:
			pfx, err := parsePrefix(s)
			if err != nil {
				return c, malformed("%s value %q is not an IP address or CIDR block", at, s)
			}
			c.nets = append(c.nets, pfx)
		}
	}
	return c, nil
}

func strconvQuote(s string) string { return strconv.Quote(s) }

// validKey accepts <service>:<name>, with the name free-form (kms:tag/<TagKey>).
func validKey(k string) bool {
	svc, name, ok := strings.Cut(k, ":")
	if !ok || svc == "" || name == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] == 0x7f {
			return false
		}
	}
	return true
}

// parseTime accepts RFC 3339 (which RAM's ISO 8601 examples are) with or
// without fractional seconds, and a whole number of seconds since the epoch.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04Z07:00", s); err == nil {
		return t, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<40 {
		return time.Time{}, strconv.ErrSyntax
	}
	return time.Unix(n, 0).UTC(), nil
}

// parsePrefix reads a CIDR block or a single address (a /32 or /128),
// unmapping IPv4-in-IPv6 so ::ffff:10.0.0.1 and 10.0.0.1 compare equal.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// lookup finds a condition key's request values; keys are matched
// case-insensitively, trying the exact spelling first to avoid a scan.
func lookup(conds map[string][]string, c *Condition) ([]string, bool) {
	if v, ok := conds[c.Key]; ok {
		return v, true
	}
	for k, v := range conds {
		if len(k) == len(c.key) && asciiEqualFold(c.key, k) {
			return v, true
		}
	}
	return nil, false
}

// holds evaluates the condition against the request's values.
func (c *Condition) holds(conds map[string][]string) bool {
	vals, ok := lookup(conds, c)
	if !ok || len(vals) == 0 {
		// An absent key satisfies no comparison: a positive operator is
		// false and its negation true (RAM's and AWS's rule).
		return c.op.negate
	}
	m := false
	for _, v := range vals {
		if c.matchOne(v) {
			m = true
			break
		}
	}
	return m != c.op.negate
}

// matchOne reports whether one request value matches any policy value under
// the positive form of the operator. A request value that does not parse as
// the operator's type matches nothing.
func (c *Condition) matchOne(v string) bool {
	switch c.op.kind {
	case kString:
		for _, p := range c.Values {
			if p == v {
				return true
			}
		}
	case kStringIgnoreCase:
		for _, p := range c.Values {
			if strings.EqualFold(p, v) {
				return true
			}
		}
	case kStringLike:
		for _, p := range c.Values {
			if glob(p, v, false) {
				return true
			}
		}
	case kNumeric:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) {
			return false
		}
		for _, p := range c.nums {
			if compare(c.op.cmp, cmp3(f, p)) {
				return true
			}
		}
	case kDate:
		t, err := parseTime(v)
		if err != nil {
			return false
		}
		for _, p := range c.times {
			if compare(c.op.cmp, t.Compare(p)) {
				return true
			}
		}
	case kBool:
		var b bool
		switch strings.ToLower(v) {
		case "true":
			b = true
		case "false":
		default:
			return false
		}
		for _, p := range c.bools {
			if p == b {
				return true
			}
		}
	case kIP:
		a, err := netip.ParseAddr(v)
		if err != nil {
			return false
		}
		a = a.Unmap().WithZone("")
		for _, p := range c.nets {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

func cmp3(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compare applies cmp to the sign of (request value − policy value).
func compare(c cmp, sign int) bool {
	switch c {
	case cmpEq:
		return sign == 0
	case cmpLt:
		return sign < 0
	case cmpLe:
		return sign <= 0
	case cmpGt:
		return sign > 0
	case cmpGe:
		return sign >= 0
	}
	return false
}
