package kmsapi_test

import (
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/kmsapi"
)

// *keys.Service must implement the interfaces the wire layer declares.
var (
	_ kmsapi.KeyService = (*keys.Service)(nil)
	_ kmsapi.KeyTagger  = (*keys.Service)(nil)
)
