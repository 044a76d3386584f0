package console

import (
	"context"
	"errors"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/kmsapi"
)

type nilAPI struct{}

func (nilAPI) Invoke(context.Context, apicall.Principal, string, string, apicall.Params, kmsapi.CallMeta) (any, error) {
	return nil, errors.New("no API in this test")
}

func (nilAPI) Allowed(context.Context, apicall.Principal, string, string, apicall.Params, kmsapi.CallMeta) error {
	return errors.New("no API in this test")
}

type nilIDs struct{}

func (nilIDs) VerifyLogin(context.Context, string, string) (apicall.Principal, error) {
	return apicall.Principal{}, errors.New("no")
}

func (nilIDs) LookupAccessKey(context.Context, string) (apicall.Principal, string, error) {
	return apicall.Principal{}, "", errors.New("no")
}
