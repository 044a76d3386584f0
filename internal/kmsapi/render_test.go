package kmsapi

import (
	"strings"
	"testing"
	"time"
)

type renderBase struct {
	Arn string `json:"Arn"`
}

type renderValue struct {
	renderBase
	Name    string            `json:"Name"`
	Skip    string            `json:"-"`
	Empty   string            `json:"Empty,omitempty"`
	Blob    []byte            `json:"Blob"`
	When    time.Time         `json:"When"`
	Nil     *string           `json:"Nil"`
	Flag    bool              `json:"Flag"`
	Ratio   float64           `json:"Ratio"`
	Labels  map[string]string `json:"Labels"`
	private string
}

func TestRenderJSON(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, `{"RequestId":"R"}`},
		{"empty struct", struct{}{}, `{"RequestId":"R"}`},
		{"map", map[string]int{"b": 2, "a": 1}, `{"RequestId":"R","a":1,"b":2}`},
		{"no HTML escaping", map[string]string{"X": "<&>"}, `{"RequestId":"R","X":"<&>"}`},
	}
	for _, tt := range tests {
		got, err := renderJSON("R", tt.v)
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: %s, %v; want %s", tt.name, got, err, tt.want)
		}
	}
	if _, err := renderJSON("R", []int{1}); err == nil {
		t.Error("a slice rendered as a response object")
	}
}

func TestRenderXML(t *testing.T) {
	v := renderValue{
		renderBase: renderBase{Arn: "acs:kms:x"}, Name: "n\x01\n", Skip: "no", Blob: []byte("hi"),
		When: time.Date(2020, 2, 21, 15, 39, 26, 0, time.UTC), Flag: true, Ratio: 0.5,
		Labels: map[string]string{"b": "2", "a": "1"}, private: "p",
	}
	got, err := renderXML("XResponse", "R", &v)
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?><XResponse><RequestId>R</RequestId>` +
		`<Arn>acs:kms:x</Arn><Name>n` + "\uFFFD" + `&#xA;</Name><Blob>aGk=</Blob><When>2020-02-21T15:39:26Z</When>` +
		`<Nil></Nil><Flag>true</Flag><Ratio>0.5</Ratio><Labels><a>1</a><b>2</b></Labels></XResponse>`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := renderXML("X", "R", map[string]string{"bad name": "v"}); err == nil {
		t.Error("invalid element name rendered")
	}
	if _, err := renderXML("X", "R", "text"); err == nil {
		t.Error("a string rendered as a response object")
	}
	// Cycles through interfaces stop at the depth limit instead of looping.
	m := map[string]any{}
	m["Self"] = m
	if _, err := renderXML("X", "R", m); err == nil || !strings.Contains(err.Error(), "deeply") {
		t.Errorf("cyclic value: %v", err)
	}
}
