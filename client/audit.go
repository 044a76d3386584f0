package client

import (
	"context"
	"errors"
)

// AuditEvent is one audit record as ListAuditEvents returns it.
type AuditEvent struct {
	Seq           uint64            `json:"Seq"`
	Time          string            `json:"Time"`
	Account       string            `json:"Account"`
	PrincipalType string            `json:"PrincipalType,omitempty"`
	PrincipalName string            `json:"PrincipalName,omitempty"`
	PrincipalArn  string            `json:"PrincipalArn,omitempty"`
	AccessKeyId   string            `json:"AccessKeyId,omitempty"`
	SourceIp      string            `json:"SourceIp,omitempty"`
	OnBehalfOf    string            `json:"OnBehalfOf,omitempty"`
	ApiVersion    string            `json:"ApiVersion,omitempty"`
	Action        string            `json:"Action,omitempty"`
	Resource      string            `json:"Resource,omitempty"`
	RequestId     string            `json:"RequestId"`
	Stage         string            `json:"Stage"`
	Result        string            `json:"Result"`
	HttpStatus    int               `json:"HttpStatus"`
	Params        map[string]string `json:"Params,omitempty"`
	Mac           string            `json:"Mac,omitempty"`
}

// AuditReport is VerifyAuditTrail's response.
type AuditReport struct {
	RequestId     string `json:"RequestId"`
	Valid         bool   `json:"Valid"`
	RecordCount   uint64 `json:"RecordCount"`
	HeadSeq       uint64 `json:"HeadSeq"`
	FirstBadSeq   uint64 `json:"FirstBadSeq,omitempty"`
	Problem       string `json:"Problem,omitempty"`
	CheckpointSeq uint64 `json:"CheckpointSeq,omitempty"`
}

// maxAuditPages bounds ListAuditEvents' walk (100 records a page), so that
// a server that never stops returning a NextToken cannot loop it forever.
const maxAuditPages = 100000

// ListAuditEvents returns the account's audit records that pass filters
// (the action's parameters: Since, Until, Principal, EventAction,
// Resource, Result), oldest first, walking every page; limit > 0 stops
// after that many records.
func (c *Client) ListAuditEvents(ctx context.Context, filters map[string]string, limit int) ([]AuditEvent, error) {
	params := map[string]string{"MaxResults": "100"}
	for k, v := range filters {
		params[k] = v
	}
	events := []AuditEvent{}
	for range maxAuditPages {
		var out struct {
			Events    struct{ Event []AuditEvent }
			NextToken string
		}
		if err := c.Call(ctx, VersionKeyhold, "ListAuditEvents", params, &out); err != nil {
			return nil, err
		}
		events = append(events, out.Events.Event...)
		if limit > 0 && len(events) >= limit {
			return events[:limit], nil
		}
		if out.NextToken == "" {
			return events, nil
		}
		params["NextToken"] = out.NextToken
	}
	return nil, errors.New("ListAuditEvents: the server returned more pages than any trail holds")
}

// VerifyAuditTrail checks the account's hash chain end to end, and against
// checkpoint (a CreateAuditCheckpoint result) when it is not "".
func (c *Client) VerifyAuditTrail(ctx context.Context, checkpoint string) (*AuditReport, error) {
	params := map[string]string{}
	if checkpoint != "" {
		params["Checkpoint"] = checkpoint
	}
	var rep AuditReport
	if err := c.Call(ctx, VersionKeyhold, "VerifyAuditTrail", params, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
