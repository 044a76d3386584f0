package rotation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/secrets"
)

// ECS secret sub-types.
const (
	SubTypePassword = "Password"
	SubTypeSSHKey   = "SSHKey"
)

// Key types for generated SSH key pairs (ExtendedConfig "KeyType").
const (
	KeyEd25519 = "ed25519"
	KeyRSA2048 = "RSA2048"
	KeyRSA4096 = "RSA4096"
)

// ecsValue is the SecretData of an ECS secret.
type ecsValue struct {
	UserName   string `json:"UserName"`
	Password   string `json:"Password,omitempty"`
	PublicKey  string `json:"PublicKey,omitempty"`
	PrivateKey string `json:"PrivateKey,omitempty"`
}

// ecsConfig is what rotation reads from an ECS secret's ExtendedConfig.
// PasswordLength, ExcludeCharacters and KeyType are Keyhold's overrides of
// the generated value's rules (docs/hosts.md).
type ecsConfig struct {
	SubType           string
	InstanceID        string
	PasswordLength    int
	ExcludeCharacters string
	KeyType           string
}

func invalid(format string, args ...any) error {
	return errs.E(errs.KindInvalidParameter, format, args...)
}

func parseConfig(cfg map[string]any) (ecsConfig, error) {
	var c ecsConfig
	c.SubType, _ = cfg["SecretSubType"].(string)
	c.InstanceID, _ = cfg["InstanceId"].(string)
	if c.SubType != SubTypePassword && c.SubType != SubTypeSSHKey {
		return c, invalid("ExtendedConfig.SecretSubType must be Password or SSHKey.")
	}
	if c.InstanceID == "" {
		return c, invalid("ExtendedConfig.InstanceId is required for ECS secrets.")
	}
	if v, ok := cfg["PasswordLength"]; ok {
		f, isNum := v.(float64)
		if !isNum || f != float64(int(f)) || f < 8 || f > 128 {
			return c, invalid("ExtendedConfig.PasswordLength must be an integer from 8 to 128.")
		}
		c.PasswordLength = int(f)
	}
	if v, ok := cfg["ExcludeCharacters"]; ok {
		s, isStr := v.(string)
		if !isStr {
			return c, invalid("ExtendedConfig.ExcludeCharacters must be a string.")
		}
		c.ExcludeCharacters = s
	}
	if v, ok := cfg["KeyType"]; ok {
		s, _ := v.(string)
		switch strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s)) {
		case "ed25519":
			c.KeyType = KeyEd25519
		case "rsa2048", "rsa":
			c.KeyType = KeyRSA2048
		case "rsa4096":
			c.KeyType = KeyRSA4096
		default:
			return c, invalid("ExtendedConfig.KeyType must be ed25519, RSA2048 or RSA4096.")
		}
	}
	return c, nil
}

func configOf(s *secrets.Secret) (ecsConfig, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(s.ExtendedConfig), &m); err != nil || m == nil {
		return ecsConfig{}, errs.E(errs.KindInvalidState, "The secret's ExtendedConfig cannot be read.")
	}
	return parseConfig(m)
}

// checkValue parses an ECS value of the sub-type and returns it with
// PublicKey filled in from the private key. Messages never quote it.
func checkValue(subType string, data []byte) (ecsValue, error) {
	bad := invalid("The parameter SecretData does not have the form ECS %s secrets require.", subType)
	var v ecsValue
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil || v.UserName == "" {
		return v, bad
	}
	switch subType {
	case SubTypePassword:
		if v.Password == "" || v.PublicKey != "" || v.PrivateKey != "" {
			return v, bad
		}
		if strings.ContainsAny(v.Password, "\n\r\x00") {
			return v, invalid("The password may not contain line breaks or NUL characters.")
		}
	case SubTypeSSHKey:
		if v.PrivateKey == "" || v.Password != "" {
			return v, bad
		}
		key, err := ssh.ParseRawPrivateKey([]byte(v.PrivateKey))
		if err != nil {
			return v, invalid("SecretData.PrivateKey is not an unencrypted PEM private key.")
		}
		signer, err := ssh.NewSignerFromKey(key)
		if err != nil {
			return v, invalid("SecretData.PrivateKey is not a key type SSH supports.")
		}
		derived := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		if v.PublicKey != "" {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(v.PublicKey))
			if err != nil {
				return v, invalid("SecretData.PublicKey is not in authorized_keys format.")
			}
			if !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
				return v, invalid("SecretData.PublicKey does not belong to SecretData.PrivateKey.")
			}
		}
		v.PublicKey = derived
	default:
		return v, bad
	}
	return v, nil
}

// ECS rotates ECS secrets on enrolled hosts through the engine. It
// implements secrets.Rotator (RotateSecret) and secrets.Validator
// (CreateSecret's host checks).
type ECS struct {
	e     *Engine
	sec   Secrets
	fleet Fleet
}

// NewECS returns the ECS rotator over the engine.
func NewECS(e *Engine) *ECS { return &ECS{e: e, sec: e.sec, fleet: e.fleet} }

var _ secrets.Rotator = (*ECS)(nil)

// hostUser checks that the host is enrolled and that its agent may change
// the user. kind is the error kind to use (InvalidParameter when creating,
// InvalidState when rotating an existing secret).
func (x *ECS) hostUser(ctx context.Context, account, hostID, user string, kind errs.Kind) error {
	h, err := x.fleet.Host(ctx, account, hostID)
	if errs.Is(err, errs.KindNotFound) || err == nil && (h == nil || h.Removed) {
		return errs.E(kind, "The instance %s is not an enrolled host.", hostID)
	}
	if err != nil {
		return err
	}
	for _, u := range h.LocalUsers {
		if u.Name != user {
			continue
		}
		if !u.Allowed {
			return errs.E(kind, "The agent on %s does not manage the user %s (see its --allow-users).", hostID, user)
		}
		return nil
	}
	return errs.E(kind, "The user %s does not exist on the instance %s.", user, hostID)
}

// ValidateCreate checks a new ECS secret against its host before anything
// is stored: the host is enrolled, the user exists there and its agent may
// change it, and the value has the sub-type's form.
func (x *ECS) ValidateCreate(ctx context.Context, account, subType string, cfg map[string]any, value []byte) error {
	c, err := parseConfig(cfg)
	if err != nil {
		return err
	}
	v, err := checkValue(c.SubType, value)
	if err != nil {
		return err
	}
	return x.hostUser(ctx, account, c.InstanceID, v.UserName, errs.KindInvalidParameter)
}

// Rotate starts a rotation and returns at once; the rotation proceeds in
// the background (see the package comment). supplied is the caller's new
// value, nil to generate one.
func (x *ECS) Rotate(ctx context.Context, account string, s *secrets.Secret, versionID string, supplied []byte) error {
	c, err := configOf(s)
	if err != nil {
		return err
	}
	// Cheap answers first: a repeat or a clash needs no key generation.
	if open, err := x.e.Open(ctx, account, s.Name); err != nil {
		return err
	} else if open != nil {
		if open.VersionID == versionID {
			return nil
		}
		return errBusy()
	}
	curPlain, _, err := x.sec.ReadVersion(ctx, account, s.Name, "", secrets.StageCurrent)
	if err != nil {
		return err
	}
	var cur ecsValue
	if err := json.Unmarshal(curPlain, &cur); err != nil || cur.UserName == "" {
		return errs.E(errs.KindInvalidState, "The secret's current value is not an ECS value.")
	}
	if err := x.hostUser(ctx, account, c.InstanceID, cur.UserName, errs.KindInvalidState); err != nil {
		return err
	}
	var next ecsValue
	if supplied != nil {
		if next, err = checkValue(c.SubType, supplied); err != nil {
			return err
		}
		if next.UserName != cur.UserName {
			return invalid("SecretData.UserName must be the secret's user, %s.", cur.UserName)
		}
	} else if next, err = generate(c, cur.UserName); err != nil {
		return err
	}
	oldPub := ""
	if c.SubType == SubTypeSSHKey {
		if old, err := checkValue(SubTypeSSHKey, curPlain); err == nil {
			oldPub = old.PublicKey
		}
	}
	value, err := json.Marshal(next)
	if err != nil {
		return errs.Wrap(errs.KindInternal, err, "encoding the new value")
	}
	_, err = x.e.Start(ctx, StartRequest{
		Account: account, SecretName: s.Name, SecretType: s.Type, SubType: c.SubType,
		HostID: c.InstanceID, User: cur.UserName, VersionID: versionID, OldPublicKey: oldPub,
		Value: value, Supplied: supplied != nil, Trigger: triggerOf(ctx),
	})
	return err
}

// generate makes a new value: a 32-character password with every class
// (or as ExtendedConfig says), or an ed25519 key pair (RSA on request).
func generate(c ecsConfig, user string) (ecsValue, error) {
	v := ecsValue{UserName: user}
	if c.SubType == SubTypePassword {
		pw, err := secrets.RandomPassword(secrets.PasswordInput{
			Length: c.PasswordLength, ExcludeCharacters: c.ExcludeCharacters, RequireEachIncludedType: true,
		})
		v.Password = pw
		return v, err
	}
	priv, pub, err := NewKeyPair(c.KeyType)
	v.PrivateKey, v.PublicKey = priv, pub
	return v, err
}

// NewKeyPair generates an SSH key pair: the private key PEM in OpenSSH
// format and the public key in authorized_keys format.
func NewKeyPair(keyType string) (privatePEM, public string, err error) {
	var key crypto.Signer
	switch keyType {
	case "", KeyEd25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case KeyRSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA4096:
		key, err = rsa.GenerateKey(rand.Reader, 4096)
	default:
		return "", "", invalid("Unknown key type.")
	}
	if err != nil {
		return "", "", errs.Wrap(errs.KindInternal, err, "generating a key pair")
	}
	block, err := ssh.MarshalPrivateKey(key, "keyhold")
	if err != nil {
		return "", "", errs.Wrap(errs.KindInternal, err, "encoding a private key")
	}
	sshPub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		return "", "", errs.Wrap(errs.KindInternal, err, "encoding a public key")
	}
	return string(pem.EncodeToMemory(block)), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))), nil
}
