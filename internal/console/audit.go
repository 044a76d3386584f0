package console

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

type auditRow struct {
	Seq                                                               uint64
	Time, PrincipalType, PrincipalName, AccessKeyId, SourceIp, Action string
	Resource, RequestId, Stage, Result                                string
	HttpStatus                                                        int
	Params                                                            map[string]string
}

// auditParams maps the page's filters to the audit actions' parameters.
func auditParams(r *http.Request) (map[string]string, map[string]string) {
	q := r.URL.Query()
	form := map[string]string{}
	p := map[string]string{}
	for field, param := range map[string]string{"principal": "Principal", "action": "EventAction", "resource": "Resource",
		"result": "Result", "since": "Since", "until": "Until", "next": "NextToken"} {
		v := strings.TrimSpace(q.Get(field))
		form[field] = v
		if v == "" {
			continue
		}
		if (param == "Since" || param == "Until") && !strings.Contains(v, "Z") {
			// <input type=datetime-local> sends local wall time without a
			// zone; the console reads it as UTC, as it shows times.
			if t, err := time.Parse("2006-01-02T15:04", v); err == nil {
				v = t.UTC().Format(time.RFC3339)
			}
		}
		p[param] = v
	}
	return p, form
}

func (c *Console) auditList(w http.ResponseWriter, r *http.Request, s *session) {
	p, form := auditParams(r)
	p["MaxResults"] = "50"
	var out struct {
		Events    struct{ Event []auditRow }
		NextToken string
	}
	data := map[string]any{"Title": "Audit", "F": form}
	if err := c.call(r, s, keyhold, "ListAuditEvents", p, &out); err != nil {
		data["Error"] = errText(err)
	}
	data["Events"], data["Next"] = out.Events.Event, out.NextToken
	c.render(w, r, http.StatusOK, "audit", s, data)
}

func (c *Console) auditVerify(w http.ResponseWriter, r *http.Request, s *session) {
	var rep struct {
		Valid                             bool
		RecordCount, HeadSeq, FirstBadSeq uint64
		Problem                           string
	}
	if err := c.call(r, s, keyhold, "VerifyAuditTrail", nil, &rep); err != nil {
		c.failTo(w, r, s, Prefix+"audit", err)
		return
	}
	if !rep.Valid {
		c.sessions.addFlash(s, "error", fmt.Sprintf("The audit chain is broken at record %d: %s", rep.FirstBadSeq, rep.Problem))
		http.Redirect(w, r, Prefix+"audit", http.StatusSeeOther)
		return
	}
	c.done(w, r, s, Prefix+"audit", fmt.Sprintf("The audit chain verifies: %d records, head %d.", rep.RecordCount, rep.HeadSeq))
}

// auditExport downloads the filtered records as JSON lines (one page of
// up to the export maximum; the file says when more remain).
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request, s *session) {
	p, _ := auditParams(r)
	var out struct {
		Data      string
		Count     int
		NextToken string
	}
	if err := c.call(r, s, keyhold, "ExportAuditEvents", p, &out); err != nil {
		c.fail(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Content-Disposition", `attachment; filename="keyhold-audit.jsonl"`)
	if out.NextToken != "" {
		w.Header().Set("X-Keyhold-Next-Token", out.NextToken)
	}
	_, _ = w.Write([]byte(out.Data))
}
