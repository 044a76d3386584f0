package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// pages are the templates rendered inside the layout.
var pageNames = []string{"signin", "home", "secrets", "secret_new", "secret_new_ecs", "secret", "keys", "key",
	"hosts", "rotations", "rotation", "identities", "user", "policy", "audit", "error"}

func parseTemplates(now func() time.Time) (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"rel":     func(v string) string { return relTime(v, now()) },
		"abs":     absTime,
		"join":    strings.Join,
		"has":     func(list []string, v string) bool { return contains(list, v) },
		"add":     func(a, b int) int { return a + b },
		"sub":     func(a, b int) int { return a - b },
		"qs":      func(kv ...string) template.URL { return template.URL(queryString(kv...)) },
		"isoTime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		// shortARN drops "acs:<service>:<region>:<account>:" for tables;
		// the full ARN goes in the title.
		"shortARN": func(arn string) string {
			if parts := strings.SplitN(arn, ":", 5); len(parts) == 5 && parts[0] == "acs" {
				return parts[4]
			}
			return arn
		},
	}
	out := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// queryString builds "?k=v&..." from pairs, leaving out empty values.
func queryString(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if b.Len() == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(urlEscape(kv[i]) + "=" + urlEscape(kv[i+1]))
	}
	return b.String()
}

// parseTime reads the API's times (ISO 8601 UTC, with or without seconds).
func parseTime(v string) (time.Time, bool) {
	for _, f := range []string{time.RFC3339Nano, "2006-01-02T15:04Z", "2006-01-02T15:04:05Z"} {
		if t, err := time.Parse(f, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func absTime(v string) string {
	t, ok := parseTime(v)
	if !ok {
		return v
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// relTime says how long ago (or from now) an API time is.
func relTime(v string, now time.Time) string {
	t, ok := parseTime(v)
	if !ok {
		return v
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 45*time.Second:
		return "just now"
	case d < 55*time.Minute:
		s = plural(int(d.Round(time.Minute)/time.Minute), "minute")
	case d < 36*time.Hour:
		s = plural(int(d.Round(time.Hour)/time.Hour), "hour")
	default:
		s = plural(int(d.Round(24*time.Hour)/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// render writes a page inside the layout. The session (nil on the sign-in
// page) supplies the principal, the CSRF token and pending flash messages.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, s *session, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["Page"] = page
	if s != nil {
		data["CSRF"] = s.csrf
		data["Who"] = s.principal.Name
		data["WhoKind"] = s.principal.Kind
		data["Account"] = s.principal.Account
		data["Flash"] = c.sessions.takeFlash(s)
	}
	if _, ok := data["Title"]; !ok {
		data["Title"] = "Keyhold"
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout.html", data); err != nil {
		c.log.Error("console: render", "page", page, "err", err)
		http.Error(w, "The page cannot be shown.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page for a refused or failed action.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status := http.StatusBadRequest
	if st, _, _ := errInfo(err); st != 0 {
		status = st
	}
	c.render(w, r, status, "error", s, map[string]any{"Title": "Not done", "Error": errText(err)})
}

// done flashes a message and sends the browser on (post/redirect/get).
func (c *Console) done(w http.ResponseWriter, r *http.Request, s *session, to, msg string) {
	c.sessions.addFlash(s, "ok", msg)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// failTo flashes the refusal and sends the browser back.
func (c *Console) failTo(w http.ResponseWriter, r *http.Request, s *session, to string, err error) {
	c.sessions.addFlash(s, "error", errText(err))
	http.Redirect(w, r, to, http.StatusSeeOther)
}
