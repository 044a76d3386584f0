package client

import (
	"context"
	"strconv"
)

// RotationStep is one step of a rotation. Error never holds a value.
type RotationStep struct {
	Name  string
	State string // running | ok | failed
	Time  string
	Error string `json:",omitempty"`
}

// Rotation is a rotation of a managed secret on its target, as
// DescribeRotation returns it.
type Rotation struct {
	RequestId     string `json:",omitempty"`
	RotationId    string
	Arn           string
	SecretName    string
	SecretType    string
	SecretSubType string
	InstanceId    string
	UserName      string
	VersionId     string
	// State: storing, applying, promoting, cleaning-up, rolling-back,
	// succeeded, failed, rolled-back or abandoned.
	State      string
	Trigger    string // api or schedule
	Supplied   bool   // the new value was supplied by the caller
	Check      string `json:",omitempty"` // ssh-login or local: how the agent verified
	Error      string `json:",omitempty"`
	CreateTime string
	UpdateTime string
	Steps      struct{ Step []RotationStep }
}

// ListRotationsRequest filters ListRotations; zero fields are unset.
type ListRotationsRequest struct {
	SecretName string
	State      string
	PageNumber int
	PageSize   int
}

// RotationList is ListRotations' response, newest first.
type RotationList struct {
	RequestId  string
	PageNumber int
	PageSize   int
	TotalCount int
	Rotations  struct{ Rotation []Rotation }
}

// ListRotations lists rotations, newest first.
func (c *Client) ListRotations(ctx context.Context, r *ListRotationsRequest) (*RotationList, error) {
	p := map[string]string{}
	if r.SecretName != "" {
		p["SecretName"] = r.SecretName
	}
	if r.State != "" {
		p["State"] = r.State
	}
	if r.PageNumber != 0 {
		p["PageNumber"] = strconv.Itoa(r.PageNumber)
	}
	if r.PageSize != 0 {
		p["PageSize"] = strconv.Itoa(r.PageSize)
	}
	out := new(RotationList)
	return out, c.Call(ctx, VersionKeyhold, "ListRotations", p, out)
}

// DescribeRotation returns one rotation with its steps.
func (c *Client) DescribeRotation(ctx context.Context, rotationID string) (*Rotation, error) {
	out := new(Rotation)
	return out, c.Call(ctx, VersionKeyhold, "DescribeRotation", map[string]string{"RotationId": rotationID}, out)
}
