package main

import (
	"encoding/json"
	"math"
	"strconv"
)

// message is what the worker needs of one graphql-transport-ws message.
type message struct {
	typ        string // "next", "ping", "error", "complete", "connection_ack", or "other"
	idIsOne    bool   // "id" is the string "1"
	hasData    bool   // "payload" is an object whose "data" is there and not null
	shaped     bool   // and data.trainingJobUpdates has a string occurredAt and an integer job.metrics.step
	occurredAt []byte // (in the frame, or decoded if it had escapes)
	step       int64
}

// parseMessage reads a frame with one pass of an exact JSON scanner: it descends into
// payload.data.trainingJobUpdates.{occurredAt, job.metrics.step}, checks the syntax of every
// other value as it skips it, and keeps the last of duplicate keys (as Python's json does).
// ok is false for anything that is not one JSON object with a string "type".
func parseMessage(frame []byte) (m message, ok bool) {
	s := scanner{b: frame}
	typed := false
	ok = s.object(func(key []byte) bool {
		switch string(key) {
		case "id":
			if s.peek() != '"' {
				m.idIsOne = false
				return s.skip(0)
			}
			id, good := s.text()
			m.idIsOne = good && string(id) == "1"
			return good
		case "type":
			kind, good := s.text()
			typed = good
			m.typ = "other"
			for _, known := range [...]string{"next", "ping", "error", "complete", "connection_ack"} {
				if string(kind) == known {
					m.typ = known
				}
			}
			return good
		case "payload":
			m.hasData, m.shaped = false, false
			if s.peek() != '{' {
				return s.skip(0)
			}
			return s.payload(&m)
		}
		return s.skip(0)
	})
	s.ws()
	return m, ok && typed && s.i == len(s.b)
}

func (s *scanner) payload(m *message) bool {
	return s.object(func(key []byte) bool {
		if string(key) != "data" {
			return s.skip(0)
		}
		m.hasData, m.shaped = s.peek() != 'n', false
		if s.peek() != '{' {
			return s.skip(0)
		}
		return s.object(func(key []byte) bool {
			if string(key) != "trainingJobUpdates" {
				return s.skip(0)
			}
			m.shaped = false
			if s.peek() != '{' {
				return s.skip(0)
			}
			return s.update(m)
		})
	})
}

func (s *scanner) update(m *message) bool {
	hasTime, hasStep := false, false
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case "occurredAt":
			hasTime = false
			if s.peek() != '"' {
				return s.skip(0)
			}
			at, good := s.text()
			m.occurredAt, hasTime = at, good
			return good
		case "job":
			hasStep = false
			if s.peek() != '{' {
				return s.skip(0)
			}
			return s.object(func(key []byte) bool {
				if string(key) != "metrics" {
					return s.skip(0)
				}
				hasStep = false
				if s.peek() != '{' {
					return s.skip(0)
				}
				return s.object(func(key []byte) bool {
					if string(key) != "step" {
						return s.skip(0)
					}
					hasStep = false
					switch s.peek() {
					case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
					default:
						return s.skip(0)
					}
					number, good := s.number()
					if !good {
						return false
					}
					m.step, hasStep = integer(number)
					return true
				})
			})
		}
		return s.skip(0)
	})
	m.shaped = ok && hasTime && hasStep
	return ok
}

// integer is a JSON number's value if it is a whole number that fits in an int64.
func integer(number []byte) (int64, bool) {
	negative := number[0] == '-'
	digits := number
	if negative {
		digits = number[1:]
	}
	if len(digits) <= 18 {
		var v int64
		for _, c := range digits {
			if c < '0' || c > '9' {
				goto general // a fraction or an exponent
			}
			v = v*10 + int64(c-'0')
		}
		if negative {
			v = -v
		}
		return v, true
	}
general:
	if v, err := strconv.ParseInt(string(number), 10, 64); err == nil {
		return v, true
	}
	f, err := strconv.ParseFloat(string(number), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// scanner reads JSON from b at i.
type scanner struct {
	b []byte
	i int
}

const maxDepth = 1000

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek is the next byte that is not white space (0 at the end).
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// object reads an object, calling field with each key when the scanner is at its value;
// field reads the value (or skips it) and says whether it was well formed.
func (s *scanner) object(field func(key []byte) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		key, ok := s.text()
		if !ok || s.peek() != ':' {
			return false
		}
		s.i++
		if !field(key) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// text reads a string: its bytes in the frame, or decoded if it has escapes.
func (s *scanner) text() ([]byte, bool) {
	start := s.i
	raw, escaped, ok := s.str()
	if !ok || !escaped {
		return raw, ok
	}
	var decoded string
	if json.Unmarshal(s.b[start:s.i], &decoded) != nil {
		return nil, false
	}
	return []byte(decoded), true
}

// str reads a string (after white space): its raw content and whether it has escapes.
func (s *scanner) str() (raw []byte, escaped bool, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, true
		case c == '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !hex4(s.b[s.i+2:s.i+6]) {
					return nil, false, false
				}
				s.i += 6
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

func hex4(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// number reads a number (after white space) as JSON spells one.
func (s *scanner) number() ([]byte, bool) {
	s.ws()
	start := s.i
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return nil, false
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

func (s *scanner) literal(word string) bool {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return false
	}
	s.i += len(word)
	return true
}

// skip reads any value (after white space), checking its syntax.
func (s *scanner) skip(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch s.peek() {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, ok := s.number()
	return ok
}
