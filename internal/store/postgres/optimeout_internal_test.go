package postgres

import (
	"strings"
	"testing"
	"time"
)

// The parameter is cut out of the query string and nothing else of the
// URL changes, byte for byte (escaped passwords, several hosts, other
// parameters in their order).
func TestSplitOpTimeout(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		d       time.Duration
	}{
		{"postgres://u:p%40ss@h:5432/db", "postgres://u:p%40ss@h:5432/db", 0},
		{"postgres://u@h/db?sslmode=disable", "postgres://u@h/db?sslmode=disable", 0},
		{"postgres://u@h/db?keyhold_op_timeout=5s", "postgres://u@h/db", 5 * time.Second},
		{"postgresql://u@h1:5432,h2:5433/db?sslmode=disable&keyhold_op_timeout=1m30s&search_path=kh",
			"postgresql://u@h1:5432,h2:5433/db?sslmode=disable&search_path=kh", 90 * time.Second},
		{"postgres://u@h/db?keyhold_op_timeout=250ms&pool_max_conns=4", "postgres://u@h/db?pool_max_conns=4", 250 * time.Millisecond},
		{"postgres://u@h/db?keyhold%5Fop%5Ftimeout=2%73", "postgres://u@h/db", 2 * time.Second},
		{"postgres://u@h/db?a=1&b=keyhold_op_timeout", "postgres://u@h/db?a=1&b=keyhold_op_timeout", 0},
		// A key=value DSN is not touched (the parameter is a URL one).
		{"host=h dbname=db keyhold_op_timeout=5s", "host=h dbname=db keyhold_op_timeout=5s", 0},
	} {
		out, d, err := splitOpTimeout(tc.in)
		if err != nil || out != tc.out || d != tc.d {
			t.Errorf("splitOpTimeout(%q) = %q, %v, %v; want %q, %v", tc.in, out, d, err, tc.out, tc.d)
		}
	}
}

func TestSplitOpTimeoutRefused(t *testing.T) {
	for _, v := range []string{"", "0", "0s", "-5s", "5", "soon", "5 s", "%zz"} {
		dsn := "postgres://u:hunter2secret@h/db?keyhold_op_timeout=" + v
		_, _, err := splitOpTimeout(dsn)
		if err == nil {
			t.Errorf("keyhold_op_timeout=%q accepted", v)
			continue
		}
		if !strings.Contains(err.Error(), "keyhold_op_timeout") || strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("keyhold_op_timeout=%q: error %q should name the parameter and not the URL", v, err)
		}
	}
	if _, _, err := splitOpTimeout("postgres://h/db?keyhold_op_timeout=1s&keyhold_op_timeout=2s"); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("the parameter given twice: %v", err)
	}
}
