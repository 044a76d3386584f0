package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// textOut renders the human view: aligned key-value pairs or a table.
type textOut struct {
	w   io.Writer
	kvs [][2]string
}

// kv adds a "Key: value" line; empty values are skipped to keep views short.
func (t *textOut) kv(k, v string) {
	if v != "" {
		t.kvs = append(t.kvs, [2]string{k, v})
	}
}

func (t *textOut) flushKV() {
	if len(t.kvs) == 0 {
		return
	}
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
	for _, p := range t.kvs {
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	tw.Flush()
	t.kvs = nil
}

func (t *textOut) line(s string) {
	t.flushKV()
	fmt.Fprintln(t.w, s)
}

// table prints a header and rows; with no rows it says so rather than
// printing a lone header.
func (t *textOut) table(header []string, rows [][]string) {
	t.flushKV()
	if len(rows) == 0 {
		fmt.Fprintln(t.w, "(none)")
		return
	}
	tw := tabwriter.NewWriter(t.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			if c == "" {
				c = "-"
			}
			cells[i] = c
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// emit prints v as indented JSON with --output json, else the text view.
func (a *app) emit(v any, text func(*textOut)) error {
	if a.output == "json" {
		enc := json.NewEncoder(a.io.out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	}
	t := &textOut{w: a.io.out}
	text(t)
	t.flushKV()
	return nil
}

// emitRaw writes a value exactly as the explicit output of a get-style
// command; a newline is added only for a terminal reader, so that pipes and
// redirects receive the exact bytes.
func (a *app) emitRaw(b []byte, tty bool) error {
	if _, err := a.io.out.Write(b); err != nil {
		return err
	}
	if tty && (len(b) == 0 || b[len(b)-1] != '\n') {
		_, err := io.WriteString(a.io.out, "\n")
		return err
	}
	return nil
}

func stages(s []string) string { return strings.Join(s, ",") }
