package console

import (
	"net/http"
	"strings"

	"github.com/keyhold/keyhold/internal/kmsapi"
)

const keyhold = kmsapi.VersionKeyhold

type hostRow struct {
	InstanceId, HostName, SshAddress, AgentVersion, EnrollTime, LastSeen string
	Online                                                               bool
	DriftCount                                                           int
}

func (c *Console) hostsList(w http.ResponseWriter, r *http.Request, s *session) {
	c.showHosts(w, r, s, nil)
}

type tokenShown struct {
	Token, ExpireTime, Command string
	Uses                       int
}

func (c *Console) showHosts(w http.ResponseWriter, r *http.Request, s *session, tok *tokenShown) {
	p := map[string]string{"MaxResults": "100"}
	if n := r.URL.Query().Get("next"); n != "" {
		p["NextToken"] = n
	}
	var out struct {
		Hosts     struct{ Host []hostRow }
		NextToken string
	}
	data := map[string]any{"Title": "Hosts", "Token": tok,
		"CanEnroll": c.allowed(r, s, keyhold, "CreateEnrollmentToken", nil)}
	if err := c.call(r, s, keyhold, "ListHosts", p, &out); err != nil {
		data["Error"] = errText(err)
	}
	data["Hosts"], data["Next"] = out.Hosts.Host, out.NextToken
	c.render(w, r, http.StatusOK, "hosts", s, data)
}

// hostToken creates an enrollment token and shows it once, with the
// command to run on the host; it is not kept anywhere in the console.
func (c *Console) hostToken(w http.ResponseWriter, r *http.Request, s *session) {
	p := map[string]string{}
	if v := strings.TrimSpace(r.PostForm.Get("Ttl")); v != "" {
		p["Ttl"] = v
	}
	if v := strings.TrimSpace(r.PostForm.Get("Uses")); v != "" {
		p["Uses"] = v
	}
	var out tokenShown
	if err := c.call(r, s, keyhold, "CreateEnrollmentToken", p, &out); err != nil {
		c.failTo(w, r, s, Prefix+"hosts", err)
		return
	}
	server := c.cfg.AgentServer
	if server == "" {
		server = "https://" + r.Host
	}
	out.Command = "keyhold agent --server " + server + " --token " + out.Token + " --data-dir /var/lib/keyhold-agent"
	c.showHosts(w, r, s, &out)
}

func (c *Console) hostRemove(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if r.PostForm.Get("confirm") != id {
		c.sessions.addFlash(s, "error", "Type the host's instance id to remove it.")
		http.Redirect(w, r, Prefix+"hosts", http.StatusSeeOther)
		return
	}
	if err := c.call(r, s, keyhold, "RemoveHost", map[string]string{"InstanceId": id}, nil); err != nil {
		c.failTo(w, r, s, Prefix+"hosts", err)
		return
	}
	c.done(w, r, s, Prefix+"hosts", "Removed host "+id+"; its agent is refused from now on.")
}

type rotationRow struct {
	RotationId, SecretName, SecretType, SecretSubType, InstanceId, UserName, VersionId string
	State, Trigger, Check, Error, CreateTime, UpdateTime                               string
	Supplied                                                                           bool
	Steps                                                                              struct {
		Step []struct{ Name, State, Time, Error string }
	}
}

var rotationStates = []string{"Storing", "Applying", "Promoting", "CleaningUp", "RollingBack", "Succeeded", "Failed", "RolledBack", "Abandoned"}

func (c *Console) rotationsList(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	p := map[string]string{"PageSize": "50"}
	if v := q.Get("secret"); v != "" {
		p["SecretName"] = v
	}
	if v := q.Get("state"); v != "" {
		p["State"] = v
	}
	var out struct {
		TotalCount int
		Rotations  struct{ Rotation []rotationRow }
	}
	data := map[string]any{"Title": "Rotations", "Secret": q.Get("secret"), "State": q.Get("state"), "States": rotationStates}
	if err := c.call(r, s, keyhold, "ListRotations", p, &out); err != nil {
		data["Error"] = errText(err)
	}
	data["Rotations"], data["Total"] = out.Rotations.Rotation, out.TotalCount
	c.render(w, r, http.StatusOK, "rotations", s, data)
}

func (c *Console) rotationDetail(w http.ResponseWriter, r *http.Request, s *session) {
	var out rotationRow
	if err := c.call(r, s, keyhold, "DescribeRotation", map[string]string{"RotationId": r.PathValue("id")}, &out); err != nil {
		c.fail(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "rotation", s, map[string]any{"Title": "Rotation " + out.RotationId, "R": out})
}
