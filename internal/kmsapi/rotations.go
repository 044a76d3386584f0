package kmsapi

import (
	"context"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/rotation"
)

// RotationService is what the rotation actions need; implemented by
// *rotation.Engine.
type RotationService interface {
	List(ctx context.Context, account string, f rotation.ListFilter, pageNumber, pageSize int) ([]*rotation.Rotation, int, error)
	Get(ctx context.Context, account, id string) (*rotation.Rotation, error)
}

var _ RotationService = (*rotation.Engine)(nil)

// RotationRoutes returns ListRotations and DescribeRotation, authorized as
// keyhold:<Action> on acs:keyhold:{region}:{uid}:rotation/{id} (rotation/*
// for the list).
func RotationRoutes(svc RotationService) []Route {
	h := rotationHandlers{svc: svc}
	res := func(r *Request) string {
		id := r.Params.String("RotationId")
		if id == "" || r.Action == "ListRotations" {
			id = "*"
		}
		return rotation.ARN(r.Region, r.Principal.Account, id)
	}
	return []Route{
		{Version: VersionKeyhold, Action: "ListRotations", Handler: h.list, Resource: res},
		{Version: VersionKeyhold, Action: "DescribeRotation", Handler: h.describe, Resource: res},
	}
}

type rotationHandlers struct{ svc RotationService }

type rotationStepOut struct {
	Name  string
	State string
	Time  string
	Error string `json:",omitempty" xml:",omitempty"`
}

type rotationOut struct {
	RotationId    string
	Arn           string
	SecretName    string
	SecretType    string
	SecretSubType string
	InstanceId    string
	UserName      string
	VersionId     string
	State         string
	Trigger       string
	Supplied      bool
	Check         string `json:",omitempty" xml:",omitempty"`
	Error         string `json:",omitempty" xml:",omitempty"`
	CreateTime    string
	UpdateTime    string
	Steps         struct{ Step []rotationStepOut }
}

func renderRotation(region string, r *rotation.Rotation) rotationOut {
	out := rotationOut{
		RotationId: r.ID, Arn: rotation.ARN(region, r.Account, r.ID), SecretName: r.SecretName,
		SecretType: r.SecretType, SecretSubType: r.SubType, InstanceId: r.HostID, UserName: r.User,
		VersionId: r.VersionID, State: r.State, Trigger: r.Trigger, Supplied: r.Supplied,
		Check: r.Check, Error: r.Error, CreateTime: isoTime(r.Created), UpdateTime: isoTime(r.Updated),
	}
	out.Steps.Step = []rotationStepOut{}
	for _, s := range r.Steps {
		out.Steps.Step = append(out.Steps.Step, rotationStepOut{Name: s.Name, State: s.State, Time: isoTime(s.Time), Error: s.Error})
	}
	return out
}

var rotationStates = map[string]bool{
	rotation.StateStoring: true, rotation.StateApplying: true, rotation.StatePromoting: true,
	rotation.StateCleaningUp: true, rotation.StateRollingBack: true, rotation.StateSucceeded: true,
	rotation.StateFailed: true, rotation.StateRolledBack: true, rotation.StateAbandoned: true,
}

func (h rotationHandlers) list(ctx context.Context, r *Request) (any, error) {
	p := r.Params
	number, size, err := secretPage(p)
	if err != nil {
		return nil, err
	}
	f := rotation.ListFilter{SecretName: p.String("SecretName"), State: p.String("State")}
	if f.State != "" && !rotationStates[f.State] {
		return nil, errs.E(errs.KindInvalidParameter, "The parameter State is not a rotation state.")
	}
	rs, total, err := h.svc.List(ctx, r.Principal.Account, f, number, size)
	if err != nil {
		return nil, err
	}
	out := struct {
		PageNumber int
		PageSize   int
		TotalCount int
		Rotations  struct{ Rotation []rotationOut }
	}{PageNumber: number, PageSize: size, TotalCount: total}
	out.Rotations.Rotation = []rotationOut{}
	for _, x := range rs {
		out.Rotations.Rotation = append(out.Rotations.Rotation, renderRotation(r.Region, x))
	}
	return out, nil
}

func (h rotationHandlers) describe(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("RotationId")
	if err != nil {
		return nil, err
	}
	x, err := h.svc.Get(ctx, r.Principal.Account, id)
	if err != nil {
		return nil, err
	}
	return renderRotation(r.Region, x), nil
}
