package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/kmsapi"
)

// Wire shapes of the secret actions, as far as the pages use them.
type wireTags struct {
	Tag []struct{ TagKey, TagValue string }
}

type secretItem struct {
	SecretName, SecretType, CreateTime, UpdateTime, PlannedDeleteTime string
	Tags                                                              *wireTags
}

type listSecretsOut struct {
	PageNumber, PageSize, TotalCount int
	SecretList                       struct{ Secret []secretItem }
}

type describeSecretOut struct {
	SecretName, Arn, SecretType, Description, EncryptionKeyId, CreateTime, UpdateTime string
	PlannedDeleteTime, AutomaticRotation, RotationInterval, NextRotationDate          string
	LastRotationDate, ExtendedConfig                                                  string
	Tags                                                                              *wireTags
}

type versionItem struct {
	VersionId, CreateTime string
	VersionStages         struct{ VersionStage []string }
}

type versionsOut struct {
	TotalCount int
	VersionIds struct{ VersionId []versionItem }
}

type secretValueOut struct {
	SecretData, SecretDataType, VersionId string
	VersionStages                         struct{ VersionStage []string }
}

const (
	secretPageSize = 20
	kms            = kmsapi.VersionKMS
)

var secretTypes = []string{"Generic", "ECS", "Rds", "RAMCredentials"}

func (c *Console) home(w http.ResponseWriter, r *http.Request, s *session) {
	count := -1
	var out listSecretsOut
	if err := c.call(r, s, kms, "ListSecrets", map[string]string{"PageSize": "1"}, &out); err == nil {
		count = out.TotalCount
	}
	c.render(w, r, http.StatusOK, "home", s, map[string]any{"Title": "Home", "SecretCount": count})
}

// secretsList: search by name (substring) or tag (key or key=value), a
// type filter, and paging.
func (c *Console) secretsList(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	name, tag, typ := strings.TrimSpace(q.Get("q")), strings.TrimSpace(q.Get("tag")), q.Get("type")
	page, _ := strconv.Atoi(q.Get("page"))
	if page < 1 {
		page = 1
	}
	var filters []map[string]any
	if name != "" {
		filters = append(filters, map[string]any{"Key": "SecretName", "Values": []string{name}})
	}
	if tag != "" {
		k, v, hasValue := strings.Cut(tag, "=")
		filters = append(filters, map[string]any{"Key": "TagKey", "Values": []string{strings.TrimSpace(k)}})
		if hasValue {
			filters = append(filters, map[string]any{"Key": "TagValue", "Values": []string{strings.TrimSpace(v)}})
		}
	}
	params := map[string]string{"FetchTags": "true"}
	if len(filters) > 0 {
		b, _ := json.Marshal(filters)
		params["Filters"] = string(b)
	}
	var items []secretItem
	total := 0
	var err error
	if typ == "" {
		params["PageNumber"], params["PageSize"] = strconv.Itoa(page), strconv.Itoa(secretPageSize)
		var out listSecretsOut
		err = c.call(r, s, kms, "ListSecrets", params, &out)
		items, total = out.SecretList.Secret, out.TotalCount
	} else {
		// ListSecrets has no type filter: walk the pages (bounded) and
		// page the matches here.
		var all []secretItem
		for n := 1; n <= 50 && err == nil; n++ {
			params["PageNumber"], params["PageSize"] = strconv.Itoa(n), "100"
			var out listSecretsOut
			if err = c.call(r, s, kms, "ListSecrets", params, &out); err != nil {
				break
			}
			for _, it := range out.SecretList.Secret {
				if it.SecretType == typ {
					all = append(all, it)
				}
			}
			if n*100 >= out.TotalCount {
				break
			}
		}
		total = len(all)
		lo := min((page-1)*secretPageSize, total)
		items = all[lo:min(lo+secretPageSize, total)]
	}
	data := map[string]any{
		"Title": "Secrets", "Secrets": items, "Total": total, "Page": page, "Q": name, "Tag": tag, "Type": typ,
		"Types": secretTypes, "HasPrev": page > 1, "HasNext": page*secretPageSize < total,
		"PrevPage": strconv.Itoa(page - 1), "NextPage": strconv.Itoa(page + 1),
		"Filtered": name != "" || tag != "" || typ != "",
	}
	if err != nil {
		data["Error"] = errText(err)
	}
	data["Page"] = "secrets"
	data["PageNumber"] = page
	c.render(w, r, http.StatusOK, "secrets", s, data)
}

func (c *Console) secretNewPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.render(w, r, http.StatusOK, "secret_new", s, map[string]any{"Title": "New secret", "Form": map[string]string{"VersionId": "v1"}})
}

func (c *Console) secretCreate(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	params := map[string]string{
		"SecretName": strings.TrimSpace(f.Get("SecretName")), "VersionId": strings.TrimSpace(f.Get("VersionId")),
		"SecretData": f.Get("SecretData"), "SecretDataType": f.Get("SecretDataType"),
	}
	if d := strings.TrimSpace(f.Get("Description")); d != "" {
		params["Description"] = d
	}
	if k := strings.TrimSpace(f.Get("EncryptionKeyId")); k != "" {
		params["EncryptionKeyId"] = k
	}
	tags, terr := parseTagLines(f.Get("Tags"))
	if terr == nil && len(tags) > 0 {
		b, _ := json.Marshal(tags)
		params["Tags"] = string(b)
	}
	err := terr
	if err == nil {
		err = c.call(r, s, kms, "CreateSecret", params, nil)
	}
	if err != nil {
		form := map[string]string{}
		for k := range f {
			if k != "SecretData" && k != "csrf" { // the value is not echoed back into the page
				form[k] = f.Get(k)
			}
		}
		c.render(w, r, http.StatusBadRequest, "secret_new", s, map[string]any{"Title": "New secret", "Error": errText(err), "Form": form})
		return
	}
	c.done(w, r, s, secretURL(params["SecretName"]), "Created secret "+params["SecretName"]+".")
}

// parseTagLines reads "key=value" lines (or comma-separated pairs).
func parseTagLines(text string) ([]map[string]string, error) {
	var out []map[string]string
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' }) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			return nil, errs.E(errs.KindInvalidParameter, "Every tag needs a key: write key=value, one per line.")
		}
		out = append(out, map[string]string{"TagKey": k, "TagValue": v})
	}
	return out, nil
}

func secretURL(name string) string { return Prefix + "secrets/" + url.PathEscape(name) }

func (c *Console) secretDetail(w http.ResponseWriter, r *http.Request, s *session) {
	c.showSecret(w, r, s, r.PathValue("name"), nil)
}

// showSecret renders the detail page; revealed, when set, is a value the
// principal just asked to see.
func (c *Console) showSecret(w http.ResponseWriter, r *http.Request, s *session, name string, revealed *secretValueOut) {
	var d describeSecretOut
	if err := c.call(r, s, kms, "DescribeSecret", map[string]string{"SecretName": name, "FetchTags": "true"}, &d); err != nil {
		c.fail(w, r, s, err)
		return
	}
	var v versionsOut
	var verr error
	if d.PlannedDeleteTime == "" { // versions are not listed in the deletion window
		verr = c.call(r, s, kms, "ListSecretVersionIds", map[string]string{"SecretName": name, "IncludeDeprecated": "true", "PageSize": "100"}, &v)
	}
	versions := v.VersionIds.VersionId
	sort.SliceStable(versions, func(i, j int) bool { return versions[i].CreateTime > versions[j].CreateTime })
	var stages []string
	for _, ver := range versions {
		for _, st := range ver.VersionStages.VersionStage {
			if !contains(stages, st) {
				stages = append(stages, st)
			}
		}
	}
	sort.Strings(stages)
	data := map[string]any{
		"Title": d.SecretName, "S": d, "Versions": versions, "Stages": stages, "Revealed": revealed,
		"Managed":        d.SecretType != "Generic",
		"Deleted":        d.PlannedDeleteTime != "",
		"CanReveal":      c.allowed(r, s, kms, "GetSecretValue", map[string]string{"SecretName": name}),
		"ExtendedConfig": prettyJSON(d.ExtendedConfig),
	}
	if verr != nil {
		data["VersionsError"] = errText(verr)
	}
	c.render(w, r, http.StatusOK, "secret", s, data)
}

func prettyJSON(s string) string {
	if s == "" {
		return ""
	}
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// secretOp runs one action from the detail page.
func (c *Console) secretOp(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("name")
	f := r.PostForm
	back := secretURL(name)
	p := map[string]string{"SecretName": name}
	var msg string
	var err error
	switch r.PathValue("op") {
	case "reveal":
		if v := f.Get("VersionId"); v != "" {
			p["VersionId"] = v
		} else {
			p["VersionStage"] = "ACSCurrent"
		}
		var out secretValueOut
		if err = c.call(r, s, kms, "GetSecretValue", p, &out); err != nil {
			c.failTo(w, r, s, back, err)
			return
		}
		c.showSecret(w, r, s, name, &out)
		return
	case "put":
		p["VersionId"] = strings.TrimSpace(f.Get("VersionId"))
		p["SecretData"] = f.Get("SecretData")
		p["SecretDataType"] = f.Get("SecretDataType")
		if st := strings.TrimSpace(f.Get("VersionStages")); st != "" {
			b, _ := json.Marshal(splitList(st))
			p["VersionStages"] = string(b)
		}
		err = c.call(r, s, kms, "PutSecretValue", p, nil)
		msg = "Stored version " + p["VersionId"] + "."
	case "stage":
		p["VersionStage"] = strings.TrimSpace(f.Get("VersionStage"))
		p["MoveToVersion"] = strings.TrimSpace(f.Get("MoveToVersion"))
		if rm := strings.TrimSpace(f.Get("RemoveFromVersion")); rm != "" {
			p["RemoveFromVersion"] = rm
		}
		err = c.call(r, s, kms, "UpdateSecretVersionStage", p, nil)
		msg = fmt.Sprintf("Moved %s to version %s.", p["VersionStage"], p["MoveToVersion"])
	case "describe":
		p["Description"] = f.Get("Description")
		err = c.call(r, s, kms, "UpdateSecret", p, nil)
		msg = "Description saved."
	case "delete":
		p["RecoveryWindowInDays"] = strings.TrimSpace(f.Get("RecoveryWindowInDays"))
		var out struct{ PlannedDeleteTime string }
		err = c.call(r, s, kms, "DeleteSecret", p, &out)
		msg = "Deletion scheduled for " + absTime(out.PlannedDeleteTime) + "; restore it any time before."
	case "forcedelete":
		if f.Get("confirm") != name {
			c.failTo(w, r, s, back, errs.E(errs.KindInvalidParameter, "Type the secret's name exactly to delete it at once."))
			return
		}
		p["ForceDeleteWithoutRecovery"] = "true"
		if err = c.call(r, s, kms, "DeleteSecret", p, nil); err != nil {
			c.failTo(w, r, s, back, err)
			return
		}
		c.done(w, r, s, Prefix+"secrets", "Deleted secret "+name+" for good.")
		return
	case "restore":
		err = c.call(r, s, kms, "RestoreSecret", p, nil)
		msg = "Restored " + name + "."
	case "tag":
		var tags []map[string]string
		if tags, err = parseTagLines(f.Get("Tags")); err == nil {
			err = c.tagOne(r, s, name, tags)
		}
		msg = "Tags added."
	case "untag":
		err = c.untagOne(r, s, name, []string{f.Get("TagKey")})
		msg = "Tag " + f.Get("TagKey") + " removed."
	case "rotate":
		p["VersionId"] = strings.TrimSpace(f.Get("VersionId"))
		if p["VersionId"] == "" {
			p["VersionId"] = "console-" + randomToken()[:12]
		}
		if f.Get("custom") == "on" {
			p["SecretData"] = f.Get("SecretData")
		}
		err = c.call(r, s, kms, "RotateSecret", p, nil)
		msg = "Rotation started (new version " + p["VersionId"] + "); follow it under Rotations."
	case "rotation":
		enable := f.Get("EnableAutomaticRotation") == "on"
		p["EnableAutomaticRotation"] = strconv.FormatBool(enable)
		if enable {
			p["RotationInterval"] = strings.TrimSpace(f.Get("RotationInterval"))
		}
		err = c.call(r, s, kms, "UpdateSecretRotationPolicy", p, nil)
		msg = "Rotation policy saved."
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		c.failTo(w, r, s, back, err)
		return
	}
	c.done(w, r, s, back, msg)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		out = append(out, v)
	}
	return out
}

// tagOne and untagOne act on one secret per call, so that each is
// authorized on that secret's ARN.
func (c *Console) tagOne(r *http.Request, s *session, name string, tags []map[string]string) error {
	if len(tags) == 0 {
		return errs.E(errs.KindMissingParameter, "Enter at least one tag as key=value.")
	}
	p := map[string]string{"ResourceType": "secret", "ResourceId.1": name}
	for i, t := range tags {
		n := "Tag." + strconv.Itoa(i+1)
		p[n+".Key"], p[n+".Value"] = t["TagKey"], t["TagValue"]
	}
	return c.call(r, s, kms, "TagResources", p, nil)
}

func (c *Console) untagOne(r *http.Request, s *session, name string, keys []string) error {
	p := map[string]string{"ResourceType": "secret", "ResourceId.1": name}
	n := 0
	for _, k := range keys {
		if k = strings.TrimSpace(k); k != "" {
			n++
			p["TagKey."+strconv.Itoa(n)] = k
		}
	}
	if n == 0 {
		return errs.E(errs.KindMissingParameter, "Enter the tag keys to remove.")
	}
	return c.call(r, s, kms, "UntagResources", p, nil)
}

// secretsTags adds or removes tags on every selected secret, reporting
// each refusal.
func (c *Console) secretsTags(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	names := f["secret"]
	back := Prefix + "secrets"
	if ret := f.Get("return"); strings.HasPrefix(ret, "?") {
		back += ret
	}
	if len(names) == 0 {
		c.failTo(w, r, s, back, errs.E(errs.KindMissingParameter, "Select one or more secrets first."))
		return
	}
	var failed []string
	var firstErr error
	for _, name := range names {
		var err error
		if f.Get("action") == "remove" {
			err = c.untagOne(r, s, name, splitList(f.Get("Tags")))
		} else {
			var tags []map[string]string
			if tags, err = parseTagLines(f.Get("Tags")); err == nil {
				err = c.tagOne(r, s, name, tags)
			}
		}
		if err != nil {
			failed = append(failed, name)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		c.sessions.addFlash(s, "error", fmt.Sprintf("Not changed: %s. %s", strings.Join(failed, ", "), errText(firstErr)))
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	verb := "Tagged"
	if f.Get("action") == "remove" {
		verb = "Untagged"
	}
	c.done(w, r, s, back, fmt.Sprintf("%s %d secret(s).", verb, len(names)))
}
