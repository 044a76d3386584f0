package secrets

import (
	"context"

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
