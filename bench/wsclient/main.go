// Command wsclient is the Go drop-in for the --worker client process of bench/subscriptions.py
// (its function client_worker): COUNT graphql-transport-ws subscribers to one job's
// trainingJobUpdates, commands on stdin, results as JSON lines on stdout.
//
//	wsclient URL JOB_ID AFTER COUNT
//
// stdout: {"ready": seconds} once every subscription is sent; {"complete": step} when a step
// has reached all COUNT subscribers; {"reset": true, "cpu_s": x} after the command "reset"
// (latencies cleared, step counts and errors kept; cpu_s as below, so far); after "report",
// an empty line or EOF on stdin, one line {"latencies_ms": [...], "per_step": {"step":
// count}, "errors": [first 20], "error_count": n, "cpu_s": user+sys of this process}, then
// the connections are closed.
//
// A latency is the receipt time minus the event's occurredAt (RFC 3339, milliseconds), in
// milliseconds. Frames are parsed by a small exact JSON scanner that only descends into the
// fields it needs (and checks the syntax of the rest); a frame of another shape is counted as
// an error, as in the Python worker.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// subscription is bench/subscriptions.py's SUBSCRIPTION, character for character.
const subscription = `
subscription($jobId: ID!, $after: String) {
  trainingJobUpdates(jobId: $jobId, after: $after) {
    cursor kind status occurredAt job { jobId status metrics }
  }
}`

const (
	maxOpening   = 50  // handshakes under way at once
	keptErrors   = 20  // error texts reported
	errorTextMax = 300 // bytes of an error text
	stepBase     = 1   // steps -1 .. denseSteps-2 are counted in an array, others in a map
	denseSteps   = 1 << 16
)

// out writes whole lines to stdout, one writer at a time.
type out struct {
	mu sync.Mutex
	w  *os.File
}

func (o *out) say(line []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = o.w.Write(append(line, '\n'))
}

// steps counts receipts per step; the first to bring a step to count says it is complete.
type steps struct {
	count int64
	dense [denseSteps]atomic.Int64
	mu    sync.Mutex
	other map[int64]int64
	out   *out
}

func (s *steps) add(step int64) {
	var got int64
	if i := step + stepBase; i >= 0 && i < denseSteps {
		got = s.dense[i].Add(1)
	} else {
		s.mu.Lock()
		s.other[step]++
		got = s.other[step]
		s.mu.Unlock()
	}
	if got == s.count {
		s.out.say([]byte(`{"complete": ` + strconv.FormatInt(step, 10) + `}`))
	}
}

// snapshot returns the steps received at least once, in order of step.
func (s *steps) snapshot() ([]int64, []int64) {
	got := map[int64]int64{}
	for i := range s.dense {
		if v := s.dense[i].Load(); v > 0 {
			got[int64(i)-stepBase] = v
		}
	}
	s.mu.Lock()
	for k, v := range s.other {
		got[k] = v
	}
	s.mu.Unlock()
	keys := slices.Sorted(maps.Keys(got))
	counts := make([]int64, len(keys))
	for i, k := range keys {
		counts[i] = got[k]
	}
	return keys, counts
}

// problems keeps the first error texts and counts all of them.
type problems struct {
	mu    sync.Mutex
	first []string
	count int
}

func (p *problems) add(text string) {
	if len(text) > errorTextMax {
		text = text[:errorTextMax]
		for len(text) > 0 && !utf8.ValidString(text) {
			text = text[:len(text)-1] // not in the middle of a character
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if len(p.first) < keptErrors {
		p.first = append(p.first, text)
	}
}

// subscriber is one connection; its reader goroutine owns it, but for latencies (under mu,
// as reset and report read them from the main goroutine) and the final close.
type subscriber struct {
	conn *websocket.Conn

	mu        sync.Mutex
	latencies []float64

	// The last occurredAt parsed: every subscriber gets the same events, in order.
	lastOccurred []byte
	lastTime     time.Time
}

type client struct {
	count    int64
	steps    *steps
	problems *problems
	out      *out
	closing  atomic.Bool
}

var errShape = errors.New("unexpected shape")

// read receives frames until the connection ends.
func (c *client) read(s *subscriber) {
	buf := make([]byte, 0, 1024)
	for {
		_, r, err := s.conn.NextReader()
		if err != nil {
			if !c.closing.Load() && !websocket.IsCloseError(err, websocket.CloseNormalClosure,
				websocket.CloseGoingAway) {
				c.problems.add(err.Error())
			}
			return
		}
		buf, err = readAll(r, buf[:0])
		if err != nil {
			if !c.closing.Load() {
				c.problems.add(err.Error())
			}
			return
		}
		at := time.Now()
		if err := c.handle(s, buf, at); err != nil {
			c.problems.add(err.Error())
		}
	}
}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// handle is client_worker's reader for one message; an error is a text to count.
func (c *client) handle(s *subscriber, frame []byte, at time.Time) error {
	m, ok := parseMessage(frame)
	if !ok {
		return fmt.Errorf("not a graphql-transport-ws message: %s", frame)
	}
	switch m.typ {
	case "next":
		if !m.idIsOne || !m.hasData {
			return fmt.Errorf("%s", frame)
		}
		if !m.shaped {
			return fmt.Errorf("%w: %s", errShape, frame)
		}
		occurred, err := s.occurred(m.occurredAt)
		if err != nil {
			return fmt.Errorf("occurredAt %q: %w", m.occurredAt, err)
		}
		ms := float64(at.Sub(occurred)) / float64(time.Millisecond)
		s.mu.Lock()
		s.latencies = append(s.latencies, ms)
		s.mu.Unlock()
		c.steps.add(m.step)
	case "ping":
		if err := s.conn.WriteMessage(websocket.TextMessage, []byte(`{"type": "pong"}`)); err != nil &&
			!c.closing.Load() {
			return fmt.Errorf("pong: %w", err)
		}
	case "error", "complete":
		return fmt.Errorf("%s", frame)
	}
	return nil
}

func (s *subscriber) occurred(text []byte) (time.Time, error) {
	if s.lastOccurred != nil && bytes.Equal(text, s.lastOccurred) {
		return s.lastTime, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(text))
	if err != nil {
		return t, err
	}
	s.lastOccurred = append(s.lastOccurred[:0], text...)
	s.lastTime = t
	return t, nil
}

// open makes one subscriber: handshake, connection_init, connection_ack, subscribe.
func open(dialer *websocket.Dialer, url string, subscribe []byte) (*subscriber, error) {
	conn, response, err := dialer.Dial(url, http.Header{})
	if err != nil {
		if response != nil {
			return nil, fmt.Errorf("handshake: %w (HTTP %d)", err, response.StatusCode)
		}
		return nil, fmt.Errorf("handshake: %w", err)
	}
	init := []byte(`{"type": "connection_init", "payload": {}}`)
	if err := conn.WriteMessage(websocket.TextMessage, init); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connection_init: %w", err)
	}
	_, ack, err := conn.ReadMessage()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("waiting for connection_ack: %w", err)
	}
	if m, ok := parseMessage(ack); !ok || m.typ != "connection_ack" {
		conn.Close()
		return nil, fmt.Errorf("expected connection_ack, got %s", ack)
	}
	if err := conn.WriteMessage(websocket.TextMessage, subscribe); err != nil {
		conn.Close()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return &subscriber{conn: conn}, nil
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return math.NaN()
	}
	seconds := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}

func (c *client) report(subscribers []*subscriber) []byte {
	cpu := cpuSeconds()
	line := make([]byte, 0, 1<<16)
	line = append(line, `{"latencies_ms": [`...)
	first := true
	for _, s := range subscribers {
		s.mu.Lock()
		for _, v := range s.latencies {
			if !first {
				line = append(line, ", "...)
			}
			first = false
			line = strconv.AppendFloat(line, math.Round(v*100)/100, 'f', -1, 64)
		}
		s.mu.Unlock()
	}
	line = append(line, `], "per_step": {`...)
	keys, counts := c.steps.snapshot()
	for i, k := range keys {
		if i > 0 {
			line = append(line, ", "...)
		}
		line = append(line, '"')
		line = strconv.AppendInt(line, k, 10)
		line = append(line, `": `...)
		line = strconv.AppendInt(line, counts[i], 10)
	}
	c.problems.mu.Lock()
	texts, _ := json.Marshal(append([]string{}, c.problems.first...))
	count := c.problems.count
	c.problems.mu.Unlock()
	line = append(line, `}, "errors": `...)
	line = append(line, texts...)
	line = append(line, `, "error_count": `...)
	line = strconv.AppendInt(line, int64(count), 10)
	line = append(line, `, "cpu_s": `...)
	line = strconv.AppendFloat(line, cpu, 'f', -1, 64)
	return append(line, '}')
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: wsclient URL JOB_ID AFTER COUNT")
		os.Exit(2)
	}
	url, jobID, after := os.Args[1], os.Args[2], os.Args[3]
	count, err := strconv.Atoi(os.Args[4])
	if err != nil || count < 1 {
		fmt.Fprintf(os.Stderr, "wsclient: COUNT must be a positive integer, not %q\n", os.Args[4])
		os.Exit(2)
	}
	stdout := &out{w: os.Stdout}
	c := &client{
		count:    int64(count),
		steps:    &steps{count: int64(count), other: map[int64]int64{}, out: stdout},
		problems: &problems{},
		out:      stdout,
	}
	subscribe, err := json.Marshal(map[string]any{
		"id":   "1",
		"type": "subscribe",
		"payload": map[string]any{
			"query":     subscription,
			"variables": map[string]any{"jobId": jobID, "after": after},
		},
	})
	if err != nil {
		panic(err)
	}
	dialer := &websocket.Dialer{
		Subprotocols:     []string{"graphql-transport-ws"},
		HandshakeTimeout: 120 * time.Second,
		ReadBufferSize:   4096,
		WriteBufferPool:  &sync.Pool{}, // a write buffer only while writing (pongs are rare)
	}

	started := time.Now()
	subscribers := make([]*subscriber, count)
	opening := make(chan struct{}, maxOpening)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for i := range subscribers {
		opening <- struct{}{}
		if failed.Load() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-opening }()
			s, err := open(dialer, url, subscribe)
			if err != nil {
				failed.CompareAndSwap(nil, &err)
				return
			}
			subscribers[i] = s
			go c.read(s)
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		fmt.Fprintf(os.Stderr, "wsclient: %v\n", *err)
		os.Exit(1)
	}
	stdout.say([]byte(`{"ready": ` + strconv.FormatFloat(time.Since(started).Seconds(), 'f', -1, 64) +
		`}`))

	commands := bufio.NewScanner(os.Stdin)
	for commands.Scan() {
		command := strings.TrimSpace(commands.Text())
		if command == "reset" {
			for _, s := range subscribers {
				s.mu.Lock()
				s.latencies = s.latencies[:0]
				s.mu.Unlock()
			}
			stdout.say([]byte(`{"reset": true, "cpu_s": ` +
				strconv.FormatFloat(cpuSeconds(), 'f', -1, 64) + `}`))
		} else if command == "report" || command == "" {
			break
		}
	}
	stdout.say(c.report(subscribers))

	c.closing.Store(true)
	goodbye := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range subscribers {
		_ = s.conn.WriteControl(websocket.CloseMessage, goodbye, deadline)
		_ = s.conn.Close()
	}
}
