package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if os.Getenv("WSCLIENT_TEST_MAIN") == "1" {
		main() // the test binary as the client process
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFrames(t *testing.T) {
	for _, size := range []int{0, 5, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte("x"), size)
		b := appendFrame(nil, opText, payload)
		if b[1]&0x80 == 0 {
			t.Fatalf("%d: not masked", size)
		}
		// A server's view: unmask, then parse as a server frame would be.
		f, err := parseFrame(serverFrame(opText, unmask(t, b)))
		if err != nil || f.opcode != opText || !f.fin || !bytes.Equal(f.payload, payload) {
			t.Fatalf("%d: %v %+v", size, err, f)
		}
		whole := serverFrame(opText, payload)
		for cut := range whole {
			if _, err := parseFrame(whole[:cut]); err != errIncomplete {
				t.Fatalf("%d cut at %d: %v", size, cut, err)
			}
		}
	}
	if _, err := parseFrame([]byte{0x81, 0x85, 1, 2, 3, 4, 5}); err == nil {
		t.Error("a masked frame from the server was accepted")
	}
	if _, err := parseFrame([]byte{0xC1, 0x00}); err == nil {
		t.Error("a frame with RSV1 was accepted")
	}
	if _, err := parseFrame([]byte{0x09, 0x00}); err == nil {
		t.Error("a fragmented ping was accepted")
	}
}

// unmask returns the payload of a client frame.
func unmask(t *testing.T, b []byte) []byte {
	length, header := int(b[1]&0x7F), 2
	switch length {
	case 126:
		length, header = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		length, header = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	mask := b[header : header+4]
	payload := append([]byte{}, b[header+4:]...)
	if len(payload) != length {
		t.Fatalf("length %d, payload %d", length, len(payload))
	}
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	return payload
}

func serverFrame(opcode byte, payload []byte) []byte {
	b := []byte{0x80 | opcode}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
	return append(b, payload...)
}

// fakeServer speaks just enough graphql-transport-ws: it acknowledges, records the
// subscriptions, and sends what the test gives it to every connection.
type fakeServer struct {
	mu         sync.Mutex
	conns      []net.Conn
	subscribes []map[string]any
	pongs      int
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	digest := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"+
		"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(digest[:]), r.Header.Get("Sec-WebSocket-Protocol"))
	rw.Flush()
	go f.read(conn, rw.Reader)
}

func (f *fakeServer) read(conn net.Conn, r *bufio.Reader) {
	for {
		head := make([]byte, 2)
		if _, err := io.ReadFull(r, head); err != nil {
			return
		}
		length := int(head[1] & 0x7F) // the client's frames here are short
		body := make([]byte, 4+length)
		if length >= 126 {
			extra := make([]byte, 2)
			io.ReadFull(r, extra)
			length = int(binary.BigEndian.Uint16(extra))
			body = make([]byte, 4+length)
		}
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		payload := body[4:]
		for i := range payload {
			payload[i] ^= body[i&3]
		}
		if head[0]&0x0F == opClose {
			conn.Write(serverFrame(opClose, payload))
			conn.Close()
			return
		}
		var message map[string]any
		json.Unmarshal(payload, &message)
		f.mu.Lock()
		switch message["type"] {
		case "connection_init":
			conn.Write(serverFrame(opText, []byte(`{"type":"connection_ack"}`)))
		case "subscribe":
			f.conns = append(f.conns, conn)
			f.subscribes = append(f.subscribes, message)
		case "pong":
			f.pongs++
		}
		f.mu.Unlock()
	}
}

func (f *fakeServer) broadcast(frames ...[]byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, conn := range f.conns {
		for _, b := range frames {
			conn.Write(b)
		}
	}
}

func next(step int, at time.Time) []byte {
	return serverFrame(opText, []byte(fmt.Sprintf(`{"id":"1","type":"next","payload":{"data":`+
		`{"trainingJobUpdates":{"cursor":"c","kind":"METRICS","status":"RUNNING","occurredAt":"%s",`+
		`"job":{"jobId":"j","status":"RUNNING","metrics":{"step":%d}}}}}}`,
		at.UTC().Format("2006-01-02T15:04:05.000Z07:00"), step)))
}

// TestProcess runs the client as the bench does and checks its lines.
func TestProcess(t *testing.T) {
	server := &fakeServer{}
	http := httptest.NewServer(server)
	defer http.Close()
	url := "ws" + strings.TrimPrefix(http.URL, "http") + "/graphql"
	cmd := exec.Command(os.Args[0], url, "job-1", "cursor-0", "7")
	cmd.Env = append(os.Environ(), "WSCLIENT_TEST_MAIN=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(nil, 1<<20)
	expect := func(key string) map[string]any {
		t.Helper()
		for lines.Scan() {
			var line map[string]any
			if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
				t.Fatalf("not JSON: %s", lines.Text())
			}
			if _, ok := line[key]; ok {
				return line
			}
		}
		t.Fatalf("no %q line", key)
		return nil
	}
	expect("ready")
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(time.Millisecond) {
		server.mu.Lock()
		got := len(server.subscribes)
		server.mu.Unlock()
		if got == 7 { // ready comes once they are written, not read
			break
		}
	}
	server.mu.Lock()
	if len(server.subscribes) != 7 {
		t.Fatalf("%d subscriptions", len(server.subscribes))
	}
	payload := server.subscribes[0]["payload"].(map[string]any)
	variables := payload["variables"].(map[string]any)
	if server.subscribes[0]["id"] != "1" || payload["query"] != subscription ||
		variables["jobId"] != "job-1" || variables["after"] != "cursor-0" {
		t.Errorf("subscribe message %v", server.subscribes[0])
	}
	server.mu.Unlock()

	server.broadcast(next(-1, time.Now()))
	if got := expect("complete")["complete"]; got != -1.0 {
		t.Fatalf("complete %v", got)
	}
	stdin.Write([]byte("reset\n"))
	expect("reset")
	// Two frames in one write, a ping (graphql-transport-ws) and a WebSocket ping, and
	// frames that are errors: null data, another id, a bad shape, not JSON, error, complete.
	sent := time.Now().Add(-100 * time.Millisecond)
	server.broadcast(append(next(0, sent), next(1, sent)...))
	server.broadcast(serverFrame(opText, []byte(`{"type":"ping"}`)), serverFrame(opPing, []byte("p")))
	if got := expect("complete")["complete"]; got != 0.0 {
		t.Fatalf("complete %v", got)
	}
	server.broadcast(
		serverFrame(opText, []byte(`{"id":"1","type":"next","payload":{"data":null,"errors":[]}}`)),
		serverFrame(opText, []byte(`{"id":"2","type":"next","payload":{"data":{}}}`)),
		serverFrame(opText, []byte(`{"id":"1","type":"next","payload":{"data":{"x":1}}}`)),
		serverFrame(opText, []byte(`{"id":"1","type":`)),
		serverFrame(opText, []byte(`{"id":"1","type":"error","payload":[]}`)),
		next(2, sent),
	)
	expect("complete") // step 1
	if got := expect("complete")["complete"]; got != 2.0 {
		t.Fatalf("complete %v", got)
	}
	stdin.Write([]byte("report\n"))
	report := expect("latencies_ms")
	latencies := report["latencies_ms"].([]any)
	if len(latencies) != 3*7 {
		t.Errorf("%d latencies", len(latencies))
	}
	for _, v := range latencies {
		if ms := v.(float64); ms < 100 || ms > 5000 {
			t.Errorf("latency %v ms", ms)
		}
	}
	want := map[string]any{"-1": 7.0, "0": 7.0, "1": 7.0, "2": 7.0}
	if fmt.Sprint(report["per_step"]) != fmt.Sprint(want) {
		t.Errorf("per_step %v", report["per_step"])
	}
	if report["error_count"] != 5.0*7 || len(report["errors"].([]any)) != 20 {
		t.Errorf("error_count %v, %d errors", report["error_count"], len(report["errors"].([]any)))
	}
	if cpu, ok := report["cpu_s"].(float64); !ok || cpu <= 0 {
		t.Errorf("cpu_s %v", report["cpu_s"])
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	server.mu.Lock()
	if server.pongs != 7 {
		t.Errorf("%d pongs", server.pongs)
	}
	server.mu.Unlock()
}
