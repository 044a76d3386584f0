package secrets

import (
	"context"
	"encoding/json"

	"github.com/keyhold/keyhold/internal/store"
)

// SecretFacts returns what access control needs to decide a call on a
// secret: its type, tags, resource policy ("" when none was set) and
// encryption key id. It reads metadata only, never a value, and also
// answers for secrets in their delete window. A missing secret is
// errs.KindSecretNotFound.
func (s *Service) SecretFacts(ctx context.Context, account, name string) (secretType string, tags map[string]string, policy string, encryptionKeyID string, err error) {
	var sec *Secret
	err = s.st.View(ctx, func(tx store.Tx) error {
		var err error
		sec, err = getSecret(tx, account, name)
		return err
	})
	if err != nil {
		return "", nil, "", "", err
	}
	tags = make(map[string]string, len(sec.Tags))
	for _, t := range sec.Tags {
		tags[t.Key] = t.Value
	}
	return sec.Type, tags, sec.Policy, sec.EncryptionKeyID, nil
}

// SecretHost returns the host an ECS secret's credentials live on: the
// InstanceId of its ExtendedConfig ("" for other types, or when it cannot
// be read). Access control needs it to decide a rotation with a supplied
// value. Metadata only; a missing secret is errs.KindSecretNotFound.
func (s *Service) SecretHost(ctx context.Context, account, name string) (string, error) {
	var sec *Secret
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		sec, err = getSecret(tx, account, name)
		return err
	})
	if err != nil || sec.Type != TypeECS || sec.ExtendedConfig == "" {
		return "", err
	}
	var cfg map[string]any
	if json.Unmarshal([]byte(sec.ExtendedConfig), &cfg) != nil {
		return "", nil
	}
	id, _ := cfg["InstanceId"].(string)
	return id, nil
}
