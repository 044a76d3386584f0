package acssign

import "net/url"

// urlQueryEscape is the escaping the SDKs start from before their
// replacements.
func urlQueryEscape(s string) string { return url.QueryEscape(s) }
