package main

import (
	"encoding/json"
	"testing"
)

const good = `{"id":"1","type":"next","payload":{"data":{"trainingJobUpdates":{"cursor":"AAAB",` +
	`"kind":"METRICS_REPORTED","status":"RUNNING","occurredAt":"2026-12-02T13:40:16.123Z",` +
	`"job":{"jobId":"j-1","status":"RUNNING","metrics":{"loss":[1.5,{"a":null}],"step":-1}}}}}}`

func TestParseMessage(t *testing.T) {
	cases := []struct {
		name    string
		frame   string
		ok      bool
		typ     string
		idIsOne bool
		hasData bool
		shaped  bool
		step    int64
	}{
		{"server frame", good, true, "next", true, true, true, -1},
		{"spaces and order", ` { "payload" : {"data": {"trainingJobUpdates": {"job": {"metrics":
			{"step": 42}}, "occurredAt": "2026-12-02T13:40:16.123+00:00"}}}, "type": "next",
			"id": "1" } `, true, "next", true, true, true, 42},
		{"escaped id and key", `{"id":"\u0031","type":"next","payload":{"data":{"trainingJobUpdates":
			{"occurredAt":"x","job":{"metrics":{"st\u0065p":3}}}}}}`, true, "next", true, true, true, 3},
		{"whole float step", `{"id":"1","type":"next","payload":{"data":{"trainingJobUpdates":
			{"occurredAt":"x","job":{"metrics":{"step":3.0e1}}}}}}`, true, "next", true, true, true, 30},
		{"fractional step", `{"id":"1","type":"next","payload":{"data":{"trainingJobUpdates":
			{"occurredAt":"x","job":{"metrics":{"step":3.5}}}}}}`, true, "next", true, true, false, 0},
		{"string step", `{"id":"1","type":"next","payload":{"data":{"trainingJobUpdates":
			{"occurredAt":"x","job":{"metrics":{"step":"3"}}}}}}`, true, "next", true, true, false, 0},
		{"no step", `{"id":"1","type":"next","payload":{"data":{"trainingJobUpdates":
			{"occurredAt":"x","job":{"metrics":{}}}}}}`, true, "next", true, true, false, 0},
		{"null data", `{"id":"1","type":"next","payload":{"data":null,"errors":[{"message":"x"}]}}`,
			true, "next", true, false, false, 0},
		{"no data", `{"id":"1","type":"next","payload":{"errors":[]}}`, true, "next", true, false,
			false, 0},
		{"data not an object", `{"id":"1","type":"next","payload":{"data":[1]}}`, true, "next", true,
			true, false, 0},
		{"other id", `{"id":"2","type":"next","payload":{"data":{}}}`, true, "next", false, true,
			false, 0},
		{"numeric id", `{"id":1,"type":"next","payload":{"data":{}}}`, true, "next", false, true,
			false, 0},
		{"duplicate data, last wins", `{"id":"1","type":"next","payload":{"data":{"trainingJobUpdates":
			{"occurredAt":"x","job":{"metrics":{"step":1}}}},"data":null}}`, true, "next", true, false,
			false, 1},
		{"ping", `{"type":"ping"}`, true, "ping", false, false, false, 0},
		{"ack", `{"type":"connection_ack","payload":{}}`, true, "connection_ack", false, false, false, 0},
		{"unknown type", `{"type":"pong"}`, true, "other", false, false, false, 0},
		{"no type", `{"id":"1"}`, false, "", true, false, false, 0},
		{"type not a string", `{"type":3}`, false, "", false, false, false, 0},
		{"truncated", good[:len(good)-3], false, "next", true, true, true, -1},
		{"trailing garbage", good + "x", false, "next", true, true, true, -1},
		{"two values", good + good, false, "next", true, true, true, -1},
		{"array", `[1]`, false, "", false, false, false, 0},
		{"empty", ``, false, "", false, false, false, 0},
		{"bad escape", `{"type":"ne\xt"}`, false, "", false, false, false, 0},
		{"bad number", `{"type":"next","x":01}`, false, "next", false, false, false, 0},
		{"bad literal", `{"type":"next","x":nul}`, false, "next", false, false, false, 0},
		{"control character", "{\"type\":\"ne\nxt\"}", false, "", false, false, false, 0},
	}
	for _, c := range cases {
		m, ok := parseMessage([]byte(c.frame))
		if ok != json.Valid([]byte(c.frame)) && c.typ != "" {
			t.Errorf("%s: ok %v but json.Valid %v", c.name, ok, !ok)
		}
		if ok != c.ok {
			t.Errorf("%s: ok %v, want %v", c.name, ok, c.ok)
			continue
		}
		if !ok {
			continue
		}
		got := [4]any{m.typ, m.idIsOne, m.hasData, m.shaped}
		want := [4]any{c.typ, c.idIsOne, c.hasData, c.shaped}
		if got != want {
			t.Errorf("%s: typ/idIsOne/hasData/shaped %v, want %v", c.name, got, want)
		}
		if c.shaped && m.step != c.step {
			t.Errorf("%s: step %d, want %d", c.name, m.step, c.step)
		}
	}
	m, _ := parseMessage([]byte(good))
	if string(m.occurredAt) != "2026-12-02T13:40:16.123Z" {
		t.Errorf("occurredAt %q", m.occurredAt)
	}
}

func TestIntegerLimits(t *testing.T) {
	for text, want := range map[string]int64{
		"0": 0, "-0": 0, "9223372036854775807": 9223372036854775807,
		"-9223372036854775808": -9223372036854775808, "1e3": 1000, "-2.0": -2,
	} {
		if got, ok := integer([]byte(text)); !ok || got != want {
			t.Errorf("integer(%s) = %d, %v", text, got, ok)
		}
	}
	for _, text := range []string{"9223372036854775808", "1e300", "0.5"} {
		if _, ok := integer([]byte(text)); ok {
			t.Errorf("integer(%s) accepted", text)
		}
	}
}

func BenchmarkParseMessage(b *testing.B) {
	frame := []byte(good)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if m, ok := parseMessage(frame); !ok || !m.shaped {
			b.Fatal("not parsed")
		}
	}
}
