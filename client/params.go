package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// pb builds an RPC parameter map; empty values are left out so that the
// server applies its documented defaults.
type pb struct {
	m   map[string]string
	err error
}

func newPB() *pb { return &pb{m: map[string]string{}} }

func (p *pb) str(k, v string) *pb {
	if v != "" {
		p.m[k] = v
	}
	return p
}

func (p *pb) num(k string, v int) *pb {
	if v != 0 {
		p.m[k] = strconv.Itoa(v)
	}
	return p
}

// flag sends "true" only when set, so an unset option keeps the default.
func (p *pb) flag(k string, v bool) *pb {
	if v {
		p.m[k] = "true"
	}
	return p
}

// boolean always sends the value: for parameters that are required.
func (p *pb) boolean(k string, v bool) *pb {
	p.m[k] = strconv.FormatBool(v)
	return p
}

// js sends v as a JSON document when it is non-empty.
func (p *pb) js(k string, v any, empty bool) *pb {
	if empty || p.err != nil {
		return p
	}
	b, err := json.Marshal(v)
	if err != nil {
		p.err = fmt.Errorf("client: encoding %s: %w", k, err)
		return p
	}
	p.m[k] = string(b)
	return p
}

// call runs a KMS action whose parameters p built.
func call[T any](ctx context.Context, c *Client, action string, p *pb) (*T, error) {
	if p.err != nil {
		return nil, p.err
	}
	out := new(T)
	if err := c.Call(ctx, VersionKMS, action, p.m, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Response is the body of actions that return nothing but a request id.
type Response struct {
	RequestId string `json:"RequestId,omitempty"`
}

// Page selects a page of a list action; zero values take the server's
// defaults (page 1, 10 entries).
type Page struct {
	PageNumber int
	PageSize   int
}

func (p *pb) page(pg Page) *pb {
	return p.num("PageNumber", pg.PageNumber).num("PageSize", pg.PageSize)
}

// Tag is a resource tag, as sent in Tags and returned in Tags.Tag.
type Tag struct {
	TagKey   string `json:"TagKey"`
	TagValue string `json:"TagValue"`
}

// Tags wraps a tag list the way KMS responses nest it.
type Tags struct {
	Tag []Tag `json:"Tag,omitempty"`
}

// VersionStages wraps stage labels the way KMS responses nest them.
type VersionStages struct {
	VersionStage []string `json:"VersionStage,omitempty"`
}
