package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// member is one name/value pair of a JSON object, in document order. The
// policy reader keeps objects as ordered member lists rather than Go maps so
// that a repeated name ({"Effect":"Allow","Effect":"Deny"}) is refused
// instead of silently resolved to the last one: a reviewer reading the text
// must see what the evaluator sees.
type member struct {
	name  string
	value any // string, json.Number, bool, nil, []any, []member
}

// maxDepth bounds nesting; a policy is at most four levels deep, so anything
// deeper is malformed and need not cost stack.
const maxDepth = 16

// decodeJSON reads exactly one JSON value from doc.
func decodeJSON(doc string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return nil, errors.New("unexpected data after the policy object")
		}
		return nil, jsonErr(err)
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("document is nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonErr(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var obj []member
			for dec.More() {
				nt, err := dec.Token()
				if err != nil {
					return nil, jsonErr(err)
				}
				name, ok := nt.(string)
				if !ok {
					return nil, errors.New("object member name is not a string")
				}
				for _, m := range obj {
					if m.name == name {
						return nil, fmt.Errorf("duplicate element %q", name)
					}
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				obj = append(obj, member{name, v})
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, jsonErr(err)
			}
			if obj == nil {
				obj = []member{}
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, jsonErr(err)
			}
			return arr, nil
		}
		return nil, fmt.Errorf("unexpected %q", string(t))
	default:
		return tok, nil
	}
}

func jsonErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("unexpected end of document")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%s (at byte %d)", se.Error(), se.Offset)
	}
	return err
}

// jsonType names a decoded value's JSON type for error messages.
func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	case []any:
		return "an array"
	case []member:
		return "an object"
	}
	return "an unknown value"
}
