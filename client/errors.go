package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error is an error answered by the server: the KMS error body plus the
// HTTP status.
type Error struct {
	Code       string `json:"Code"`
	Message    string `json:"Message"`
	RequestId  string `json:"RequestId"`
	HostId     string `json:"HostId,omitempty"`
	Recommend  string `json:"Recommend,omitempty"`
	HTTPStatus int    `json:"-"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Code)
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RequestId != "" {
		b.WriteString(" (RequestId: ")
		b.WriteString(e.RequestId)
		b.WriteString(")")
	}
	return b.String()
}

// IsCode reports whether err is (or wraps) an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// decodeError turns an error response into *Error. A body that is not a
// KMS error (a proxy's HTML page, say) still yields an *Error, coded by the
// HTTP status, with a short excerpt so the user sees what answered.
func decodeError(status int, body []byte) error {
	e := &Error{HTTPStatus: status}
	if json.Unmarshal(body, e) == nil && e.Code != "" {
		return e
	}
	e.Code = fmt.Sprintf("HTTP%d", status)
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	e.Message = msg
	return e
}
