package kmsapi

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Response content types, as Alibaba Cloud's gateways send them.
const (
	contentTypeJSON = "application/json;charset=utf-8"
	contentTypeXML  = "text/xml;charset=utf-8"
)

// errorFields is the error shape every SDK reads, after the RequestId that
// the renderers put first.
type errorFields struct {
	HostID    string `json:"HostId"`
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	Recommend string `json:"Recommend"`
}

var errNotObject = errors.New("kmsapi: response value does not render as an object")

// renderJSON renders v (a struct, map or nil) with RequestId added as the
// first member, so handlers never deal with request ids.
func renderJSON(requestID string, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(`{"RequestId":`)
	id, _ := json.Marshal(requestID)
	buf.Write(id)
	if isNil(v) {
		buf.WriteByte('}')
		return buf.Bytes(), nil
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	b := bytes.TrimSpace(body.Bytes())
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, errNotObject
	}
	inner := bytes.TrimSpace(b[1 : len(b)-1])
	if len(inner) > 0 {
		buf.WriteByte(',')
		buf.Write(inner)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Interface, reflect.Slice:
		return rv.IsNil()
	}
	return false
}

// renderXML renders v under <root> with <RequestId> first. It walks the
// value by its json tags so that handlers write one shape for both formats:
// a struct or map becomes child elements, and a slice becomes repeated
// elements named after its field, which is how Alibaba's XML readers see
// lists (<SecretList><Secret>…</Secret><Secret>…</Secret></SecretList>).
// The Java SDK's XmlReader ignores the root element's name; we use the
// documented <ActionResponse> for results and <Error> for errors.
func renderXML(root, requestID string, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(xml.Header[:len(xml.Header)-1]) // without the newline
	buf.WriteString("<" + root + ">")
	buf.WriteString("<RequestId>")
	escapeXML(&buf, requestID)
	buf.WriteString("</RequestId>")
	if !isNil(v) {
		rv := reflect.ValueOf(v)
		for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
			rv = rv.Elem()
		}
		if rv.Kind() != reflect.Struct && rv.Kind() != reflect.Map {
			return nil, errNotObject
		}
		if err := xmlChildren(&buf, rv, 0); err != nil {
			return nil, err
		}
	}
	buf.WriteString("</" + root + ">")
	return buf.Bytes(), nil
}

// maxXMLDepth guards against cyclic values.
const maxXMLDepth = 32

var (
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// xmlChildren writes the members of a struct or map as elements.
func xmlChildren(buf *bytes.Buffer, rv reflect.Value, depth int) error {
	if depth > maxXMLDepth {
		return errors.New("kmsapi: response value nested too deeply")
	}
	switch rv.Kind() {
	case reflect.Struct:
		for _, f := range jsonFields(rv.Type()) {
			fv, ok := fieldByIndex(rv, f.index)
			if !ok {
				continue
			}
			if f.omitEmpty && isEmptyValue(fv) {
				continue
			}
			if err := xmlElement(buf, f.name, fv, depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("kmsapi: map key type %s cannot render as XML", rv.Type().Key())
		}
		keys := rv.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if err := xmlElement(buf, k.String(), rv.MapIndex(k), depth+1); err != nil {
				return err
			}
		}
	default:
		return errNotObject
	}
	return nil
}

// xmlElement writes <name>value</name>; a slice writes one element per item.
func xmlElement(buf *bytes.Buffer, name string, v reflect.Value, depth int) error {
	if depth > maxXMLDepth {
		return errors.New("kmsapi: response value nested too deeply")
	}
	if !validXMLName(name) {
		return fmt.Errorf("kmsapi: %q is not a valid XML element name", name)
	}
	for v.Kind() == reflect.Interface && !v.IsNil() {
		v = v.Elem()
	}
	if v.Kind() == reflect.Pointer && !v.IsNil() && !implementsMarshaler(v.Type()) {
		return xmlElement(buf, name, v.Elem(), depth)
	}
	if (v.Kind() == reflect.Slice || v.Kind() == reflect.Array) && v.Type().Elem().Kind() != reflect.Uint8 && !implementsMarshaler(v.Type()) {
		for i := range v.Len() {
			if err := xmlElement(buf, name, v.Index(i), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	buf.WriteString("<" + name + ">")
	if err := xmlValue(buf, v, depth); err != nil {
		return err
	}
	buf.WriteString("</" + name + ">")
	return nil
}

// xmlValue writes the content of one element.
func xmlValue(buf *bytes.Buffer, v reflect.Value, depth int) error {
	if !v.IsValid() || ((v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface || v.Kind() == reflect.Map || v.Kind() == reflect.Slice) && v.IsNil()) {
		return nil // JSON null: an empty element
	}
	if implementsMarshaler(v.Type()) {
		b, err := json.Marshal(v.Interface())
		if err != nil {
			return err
		}
		var s string
		if json.Unmarshal(b, &s) == nil {
			escapeXML(buf, s)
		} else {
			escapeXML(buf, string(b))
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Struct, reflect.Map:
		return xmlChildren(buf, v, depth)
	case reflect.String:
		escapeXML(buf, v.String())
	case reflect.Bool:
		buf.WriteString(strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		buf.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		buf.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		b, err := json.Marshal(v.Interface()) // same text as the JSON form
		if err != nil {
			return err
		}
		buf.Write(b)
	case reflect.Slice, reflect.Array: // []byte: base64, as encoding/json does
		b := make([]byte, v.Len())
		reflect.Copy(reflect.ValueOf(b), v)
		buf.WriteString(base64.StdEncoding.EncodeToString(b))
	default:
		return fmt.Errorf("kmsapi: %s cannot render as XML", v.Type())
	}
	return nil
}

func implementsMarshaler(t reflect.Type) bool {
	return t.Implements(jsonMarshalerType) || t.Implements(textMarshalerType)
}

func escapeXML(buf *bytes.Buffer, s string) {
	_ = xml.EscapeText(buf, []byte(s)) // writes to a bytes.Buffer never fail
}

// validXMLName accepts the subset of XML names a wire field can have.
func validXMLName(s string) bool {
	if s == "" || strings.HasPrefix(strings.ToLower(s), "xml") {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r)):
		default:
			return false
		}
	}
	return utf8.ValidString(s)
}

// jsonField is one member of a struct as encoding/json sees it.
type jsonField struct {
	name      string
	index     []int
	omitEmpty bool
}

// jsonFields lists a struct's members by encoding/json's rules for the
// cases handlers use: tag names, "-", omitempty and embedded
// structs promoted into the parent. Shadowing between embedded fields
// follows the simple rule "the shallowest wins".
func jsonFields(t reflect.Type) []jsonField {
	var out []jsonField
	seen := map[string]int{} // name → depth
	var walk func(t reflect.Type, index []int, depth int)
	walk = func(t reflect.Type, index []int, depth int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			idx := append(slices.Clone(index), i)
			ft := sf.Type
			if sf.Anonymous && name == "" {
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft, idx, depth+1)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if d, ok := seen[name]; ok && d <= depth {
				continue
			}
			seen[name] = depth
			out = slices.DeleteFunc(out, func(f jsonField) bool { return f.name == name })
			out = append(out, jsonField{
				name:      name,
				index:     idx,
				omitEmpty: strings.Contains(","+opts+",", ",omitempty,"),
			})
		}
	}
	walk(t, nil, 0)
	return out
}

// fieldByIndex is FieldByIndex that stops at a nil embedded pointer.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}
