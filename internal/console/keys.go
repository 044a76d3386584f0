package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/internal/kmsapi"
)

type keyMeta struct {
	KeyId, Arn, KeyState, Description, CreationDate, DeleteDate, KeySpec, KeyUsage   string
	ProtectionLevel, AutomaticRotation, RotationInterval, PrimaryKeyVersion, Creator string
}

type aliasItem struct{ AliasName, AliasArn, KeyId string }

type keyRow struct {
	keyMeta
	Aliases []string
}

func keyURL(id string) string { return Prefix + "keys/" + url.PathEscape(id) }

func (c *Console) keysList(w http.ResponseWriter, r *http.Request, s *session) {
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if page < 1 {
		page = 1
	}
	var out struct {
		Keys struct {
			Key []struct{ KeyId, KeyArn string }
		}
		TotalCount int
	}
	data := map[string]any{"Title": "Keys"}
	err := c.call(r, s, kms, "ListKeys", map[string]string{"PageNumber": strconv.Itoa(page), "PageSize": "20"}, &out)
	if err != nil {
		data["Error"] = errText(err)
	}
	aliases := map[string][]string{}
	var al struct {
		Aliases struct{ Alias []aliasItem }
	}
	if c.call(r, s, kms, "ListAliases", map[string]string{"PageSize": "100"}, &al) == nil {
		for _, a := range al.Aliases.Alias {
			aliases[a.KeyId] = append(aliases[a.KeyId], a.AliasName)
		}
	}
	var rows []keyRow
	for _, k := range out.Keys.Key {
		var d struct{ KeyMetadata keyMeta }
		if c.call(r, s, kms, "DescribeKey", map[string]string{"KeyId": k.KeyId}, &d) != nil {
			d.KeyMetadata = keyMeta{KeyId: k.KeyId, KeyState: "?"}
		}
		rows = append(rows, keyRow{d.KeyMetadata, aliases[k.KeyId]})
	}
	data["Keys"], data["Total"] = rows, out.TotalCount
	data["PageNumber"], data["HasPrev"], data["HasNext"] = page, page > 1, page*20 < out.TotalCount
	data["PrevPage"], data["NextPage"] = strconv.Itoa(page-1), strconv.Itoa(page+1)
	c.render(w, r, http.StatusOK, "keys", s, data)
}

func (c *Console) keyCreate(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	p := map[string]string{}
	for _, k := range []string{"Description", "KeySpec", "KeyUsage"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			p[k] = v
		}
	}
	var out struct{ KeyMetadata keyMeta }
	if err := c.call(r, s, kms, "CreateKey", p, &out); err != nil {
		c.failTo(w, r, s, Prefix+"keys", err)
		return
	}
	id := out.KeyMetadata.KeyId
	if a := strings.TrimSpace(f.Get("AliasName")); a != "" {
		if err := c.call(r, s, kms, "CreateAlias", map[string]string{"KeyId": id, "AliasName": a}, nil); err != nil {
			c.sessions.addFlash(s, "error", "The key was created but the alias was not: "+errText(err))
		}
	}
	c.done(w, r, s, keyURL(id), "Created key "+id+".")
}

func (c *Console) keyDetail(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	var d struct{ KeyMetadata keyMeta }
	if err := c.call(r, s, kms, "DescribeKey", map[string]string{"KeyId": id}, &d); err != nil {
		c.fail(w, r, s, err)
		return
	}
	var al struct {
		Aliases struct{ Alias []aliasItem }
	}
	aerr := c.call(r, s, kms, "ListAliasesByKeyId", map[string]string{"KeyId": id, "PageSize": "100"}, &al)
	var vs struct {
		KeyVersions struct {
			KeyVersion []struct{ KeyVersionId, CreationDate string }
		}
	}
	_ = c.call(r, s, kms, "ListKeyVersions", map[string]string{"KeyId": id, "PageSize": "100"}, &vs)
	data := map[string]any{"Title": "Key " + id, "K": d.KeyMetadata, "Aliases": al.Aliases.Alias,
		"Versions": vs.KeyVersions.KeyVersion}
	if aerr != nil {
		data["AliasError"] = errText(aerr)
	}
	c.render(w, r, http.StatusOK, "key", s, data)
}

func (c *Console) keyOp(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	f := r.PostForm
	p := map[string]string{"KeyId": id}
	var action, msg string
	switch r.PathValue("op") {
	case "enable":
		action, msg = "EnableKey", "Key enabled."
	case "disable":
		action, msg = "DisableKey", "Key disabled: it cannot encrypt or decrypt until enabled again."
	case "delete":
		action = "ScheduleKeyDeletion"
		p["PendingWindowInDays"] = strings.TrimSpace(f.Get("PendingWindowInDays"))
		msg = "Deletion scheduled in " + p["PendingWindowInDays"] + " days; cancel it any time before."
	case "canceldelete":
		action, msg = "CancelKeyDeletion", "Deletion cancelled; the key is disabled, enable it to use it."
	case "description":
		action, msg = "UpdateKeyDescription", "Description saved."
		p["Description"] = f.Get("Description")
	case "alias":
		action = "CreateAlias"
		p["AliasName"] = strings.TrimSpace(f.Get("AliasName"))
		msg = "Alias " + p["AliasName"] + " created."
	case "unalias":
		action = "DeleteAlias"
		p = map[string]string{"AliasName": f.Get("AliasName")}
		msg = "Alias " + p["AliasName"] + " deleted."
	default:
		http.NotFound(w, r)
		return
	}
	if err := c.call(r, s, kmsapi.VersionKMS, action, p, nil); err != nil {
		c.failTo(w, r, s, keyURL(id), err)
		return
	}
	c.done(w, r, s, keyURL(id), msg)
}
