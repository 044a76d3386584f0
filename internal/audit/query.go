package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/store"
)

// Query selects records of one account. Zero fields match everything.
type Query struct {
	Since, Until time.Time // inclusive, exclusive
	// Principal matches the principal's name, ARN or access key id.
	Principal string
	// Action matches "kms:GetSecretValue" or just "GetSecretValue".
	Action string
	// Resource matches exactly, or as a prefix when it ends in "*".
	Resource string
	Result   string // "OK" or an error code ("Pending" for attempts)
	After    uint64 // continue after this seq (paging)
	Limit    int    // default and maximum MaxList
}

// MaxList bounds one page of List.
const MaxList = 1000

// scanPage is how many records one read transaction scans.
const scanPage = 500

// List returns up to q.Limit matching records in chain order and the seq to
// continue after (0 when the chain has been scanned to its end).
func (t *Trail) List(ctx context.Context, account string, q Query) ([]Record, uint64, error) {
	if q.Limit <= 0 || q.Limit > MaxList {
		q.Limit = MaxList
	}
	prefix := account + "/"
	after := ""
	if q.After > 0 {
		after = recordKey(account, q.After)
	}
	var out []Record
	for {
		var page []store.KV
		if err := t.st.View(ctx, func(tx store.Tx) error {
			var err error
			page, err = tx.List(TableRecords, prefix, after, scanPage)
			return err
		}); err != nil {
			return nil, 0, fmt.Errorf("audit: list records: %w", err)
		}
		for _, kv := range page {
			after = kv.Key
			var r Record
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				continue // Verify reports it; a listing shows what it can read
			}
			if !q.match(&r) {
				continue
			}
			out = append(out, r)
			if len(out) == q.Limit {
				return out, r.Seq, nil
			}
		}
		if len(page) < scanPage {
			return out, 0, nil
		}
	}
}

func (q *Query) match(r *Record) bool {
	if !q.Since.IsZero() || !q.Until.IsZero() {
		ts, err := time.Parse(time.RFC3339Nano, r.Time)
		if err != nil || !q.Since.IsZero() && ts.Before(q.Since) || !q.Until.IsZero() && !ts.Before(q.Until) {
			return false
		}
	}
	if q.Principal != "" && q.Principal != r.PrincipalName && q.Principal != r.PrincipalArn && q.Principal != r.AccessKeyId {
		return false
	}
	if q.Action != "" && q.Action != r.Action {
		if _, name, ok := strings.Cut(r.Action, ":"); !ok || name != q.Action {
			return false
		}
	}
	if q.Resource != "" {
		if p, ok := strings.CutSuffix(q.Resource, "*"); ok {
			if !strings.HasPrefix(r.Resource, p) {
				return false
			}
		} else if q.Resource != r.Resource {
			return false
		}
	}
	return q.Result == "" || q.Result == r.Result
}
