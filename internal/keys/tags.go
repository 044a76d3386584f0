package keys

import (
	"context"
	"maps"
	"strings"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Tag limits shared with secrets (KMS rules).
const (
	MaxTags        = 20
	MaxTagKeyLen   = 128
	MaxTagValueLen = 128
)

// CheckTag validates one tag against the KMS rules.
func CheckTag(key, value string) error {
	if key == "" {
		return errs.E(errs.KindInvalidParameter, "A TagKey may not be empty.")
	}
	if len(key) > MaxTagKeyLen || len(value) > MaxTagValueLen {
		return errs.E(errs.KindInvalidParameter, "A TagKey or TagValue is longer than 128 characters.")
	}
	lk := strings.ToLower(key)
	if strings.HasPrefix(lk, "aliyun") || strings.HasPrefix(lk, "acs:") {
		return errs.E(errs.KindInvalidParameter, "The TagKey %s may not start with aliyun or acs:.", key)
	}
	return nil
}

// TagKey adds or overwrites tags on a key (at most 20 in all).
func (s *Service) TagKey(ctx context.Context, account, keyID string, tags map[string]string) error {
	if len(tags) == 0 {
		return errs.E(errs.KindMissingParameter, "The parameter Tags is required.")
	}
	for k, v := range tags {
		if err := CheckTag(k, v); err != nil {
			return err
		}
	}
	_, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		merged := maps.Clone(r.Tags)
		if merged == nil {
			merged = make(map[string]string, len(tags))
		}
		maps.Copy(merged, tags)
		if len(merged) > MaxTags {
			return errs.E(errs.KindLimitExceeded, "A key may have at most %d tags.", MaxTags)
		}
		r.Tags = merged
		return nil
	})
	return err
}

// UntagKey removes tags by key; absent keys are ignored.
func (s *Service) UntagKey(ctx context.Context, account, keyID string, tagKeys []string) error {
	if len(tagKeys) == 0 {
		return errs.E(errs.KindMissingParameter, "The parameter TagKeys is required.")
	}
	_, err := s.mutate(ctx, account, keyID, func(_ store.Tx, r *keyRecord) error {
		for _, k := range tagKeys {
			delete(r.Tags, k)
		}
		if len(r.Tags) == 0 {
			r.Tags = nil
		}
		return nil
	})
	return err
}

// ListKeyTags returns a key's tags.
func (s *Service) ListKeyTags(ctx context.Context, account, keyID string) (map[string]string, error) {
	r, err := s.view(ctx, account, keyID)
	if err != nil {
		return nil, err
	}
	if r.Tags == nil {
		return map[string]string{}, nil
	}
	return r.Tags, nil
}
