package console

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keyhold/keyhold/internal/errs"
)

// ECS secrets from the console, as the seeds' console does it: pick an
// enrolled host, then one of its users, then the value that logs in now.

type localUserRow struct {
	UserName string
	Allowed  bool
}

// secretNewECSPage shows the host picker and, once a host is chosen, the
// form for one of its users.
func (c *Console) secretNewECSPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.showNewECS(w, r, s, http.StatusOK, r.URL.Query().Get("instance"), map[string]string{"VersionId": "v1"}, nil)
}

func (c *Console) showNewECS(w http.ResponseWriter, r *http.Request, s *session, status int, instance string, form map[string]string, formErr error) {
	data := map[string]any{"Title": "New ECS secret", "Instance": instance, "Form": form}
	var hosts struct{ Hosts struct{ Host []hostRow } }
	err := c.call(r, s, keyhold, "ListHosts", map[string]string{"MaxResults": "100"}, &hosts)
	data["Hosts"] = hosts.Hosts.Host
	if err == nil && instance != "" {
		var host struct {
			LocalUsers struct{ LocalUser []localUserRow }
		}
		err = c.call(r, s, keyhold, "DescribeHost", map[string]string{"InstanceId": instance}, &host)
		data["Users"] = host.LocalUsers.LocalUser
		if err != nil {
			data["Instance"] = ""
		}
	}
	if formErr != nil {
		err = formErr
	}
	if err != nil {
		data["Error"] = errText(err)
		if status == http.StatusOK {
			status = http.StatusBadRequest
		}
	}
	c.render(w, r, status, "secret_new_ecs", s, data)
}

// secretCreateECS builds CreateSecret for SecretType ECS. The password and
// private key are never echoed back into the page.
func (c *Console) secretCreateECS(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	instance, user := strings.TrimSpace(f.Get("InstanceId")), strings.TrimSpace(f.Get("UserName"))
	subType := f.Get("SecretSubType")
	name := strings.TrimSpace(f.Get("SecretName"))
	if name == "" && instance != "" && user != "" {
		name = "acs/ecs/" + instance + "/" + user
	}
	params := map[string]string{"SecretName": name, "SecretType": "ECS", "VersionId": "v1"}
	value := map[string]string{"UserName": user}
	var err error
	switch subType {
	case "Password":
		value["Password"] = f.Get("Password")
		if value["Password"] == "" {
			err = errs.E(errs.KindInvalidParameter, "Enter the user's current password.")
		}
	case "SSHKey":
		value["PrivateKey"], value["PublicKey"] = strings.TrimSpace(f.Get("PrivateKey"))+"\n", strings.TrimSpace(f.Get("PublicKey"))
		if strings.TrimSpace(value["PrivateKey"]) == "" || value["PublicKey"] == "" {
			err = errs.E(errs.KindInvalidParameter, "Enter the key pair: the private key (PEM) and its public key.")
		}
	default:
		err = errs.E(errs.KindInvalidParameter, "Choose Password or Key pair.")
	}
	if user == "" && err == nil {
		err = errs.E(errs.KindInvalidParameter, "Choose the managed user.")
	}
	b, _ := json.Marshal(value)
	params["SecretData"] = string(b)
	ext, _ := json.Marshal(map[string]string{"SecretSubType": subType, "InstanceId": instance})
	params["ExtendedConfig"] = string(ext)
	for _, k := range []string{"Description", "EncryptionKeyId", "RotationInterval"} {
		if v := strings.TrimSpace(f.Get(k)); v != "" {
			params[k] = v
		}
	}
	if f.Get("EnableAutomaticRotation") != "" {
		params["EnableAutomaticRotation"] = "true"
	}
	if err == nil {
		var tags []map[string]string
		if tags, err = parseTagLines(f.Get("Tags")); err == nil && len(tags) > 0 {
			tb, _ := json.Marshal(tags)
			params["Tags"] = string(tb)
		}
	}
	if err == nil {
		err = c.call(r, s, kms, "CreateSecret", params, nil)
	}
	if err != nil {
		form := map[string]string{}
		for k := range f {
			switch k {
			case "Password", "PrivateKey", "csrf":
			default:
				form[k] = f.Get(k)
			}
		}
		c.showNewECS(w, r, s, http.StatusBadRequest, instance, form, err)
		return
	}
	c.done(w, r, s, secretURL(name), "Created ECS secret "+name+".")
}
