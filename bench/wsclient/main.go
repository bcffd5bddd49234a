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
// milliseconds. Messages are parsed by a small exact JSON scanner that only descends into the
// fields it needs (and checks the syntax of the rest); a message of another shape is counted
// as an error, as in the Python worker.
//
// What a frame costs here is mostly the kernel's: the connections are served by one epoll loop
// per processor this process may use (GOMAXPROCS, which follows taskset), one read per ready
// socket, and a loop that found few sockets ready pauses 0.5 ms before it waits again, so that
// it wakes once for many of an event's frames (wire.go and client.run say why).
//
// WSCLIENT_CPUPROFILE=FILE writes a CPU profile from the reset to the report.
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
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
	rawWait      = 5 // ms: the longest a loop keeps the processor in a raw epoll_wait
	// A loop pauses this long after a wait that found fewer than coalesceBelow connections.
	coalesceMicros = 500
	coalesceBelow  = 64
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
		text = strings.ToValidUTF8(text[:errorTextMax], "") // no character cut in two
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if len(p.first) < keptErrors {
		p.first = append(p.first, text)
	}
}

// subscriber is one connection, served by one loop (under the loop's lock).
type subscriber struct {
	fd      int
	loop    *loop
	buf     []byte // bytes read and not yet a whole frame
	message []byte // a fragmented message so far
	dead    bool

	// The last occurredAt parsed: every subscriber gets the same events, in order.
	lastOccurred []byte
	lastTime     time.Time
}

// loop is an epoll instance serving some of the connections, on one thread; its lock is
// held while it handles what one wait returned, and by reset and report.
type loop struct {
	epfd      int
	mu        sync.Mutex
	latencies []float64
	members   []*subscriber
}

type client struct {
	count    int64
	steps    *steps
	problems *problems
	out      *out
	slots    []atomic.Pointer[subscriber] // by the number given to epoll
	alive    atomic.Int64
	closing  atomic.Bool
	raw      atomic.Bool // every connection is open: loops wait in raw system calls
}

// run waits for readiness and reads each ready connection once (level-triggered: what one
// read leaves is reported again).
//
// Once every connection is open (c.raw), it waits without telling Go's scheduler (a raw
// system call, for at most rawWait ms): through the scheduler, each wait longer than 20 µs
// had the runtime's monitor thread take the processor from it and hand it back (14% of a
// perf profile was that thread). The other goroutines (stdin, stdout) run when it yields
// after a wait that found nothing.
func (c *client) run(l *loop) {
	runtime.LockOSThread()
	events := make([]syscall.EpollEvent, 1024)
	for {
		var n int
		var err error
		if c.raw.Load() {
			r, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(l.epfd),
				uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), rawWait, 0, 0)
			n = int(r)
			if errno != 0 {
				n, err = 0, errno
			}
		} else {
			n, err = syscall.EpollWait(l.epfd, events, -1)
		}
		if err != nil {
			if err == syscall.EINTR {
				runtime.Gosched()
				continue
			}
			c.problems.add("epoll_wait: " + err.Error())
			return
		}
		if n == 0 {
			runtime.Gosched()
			continue
		}
		l.mu.Lock()
		for _, event := range events[:n] {
			if s := c.slots[event.Fd].Load(); s != nil {
				c.service(s)
			}
		}
		l.mu.Unlock()
		if c.raw.Load() && n < coalesceBelow {
			// The server writes an event's frames one socket at a time, more slowly than
			// they are read: without a pause, each wait returns a frame or two and costs a
			// sleep and a wake-up. The pause delays a receipt by at most coalesce.
			_, _, _ = syscall.RawSyscall(syscall.SYS_NANOSLEEP,
				uintptr(unsafe.Pointer(&coalesce)), 0, 0)
		}
	}
}

// coalesce is the pause after a wait that found fewer than coalesceBelow ready connections.
var coalesce = syscall.NsecToTimespec(coalesceMicros * 1000)

// service reads what one connection has and handles its whole frames (the loop's lock held).
func (c *client) service(s *subscriber) {
	if s.dead {
		return
	}
	if len(s.buf) == cap(s.buf) {
		s.buf = append(s.buf, make([]byte, cap(s.buf))...)[:len(s.buf)]
	}
	free := s.buf[len(s.buf):cap(s.buf)]
	// Raw: the socket does not block, and a call through the scheduler costs more.
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(s.fd),
		uintptr(unsafe.Pointer(&free[0])), uintptr(len(free)))
	n := int(r)
	if errno == syscall.EAGAIN || errno == syscall.EINTR {
		return
	}
	if errno != 0 || n == 0 {
		if !c.closing.Load() {
			reason := "EOF"
			if errno != 0 {
				reason = errno.Error()
			}
			c.problems.add("connection ended without a close frame: " + reason)
		}
		c.drop(s)
		return
	}
	s.buf = s.buf[:len(s.buf)+n]
	c.frames(s, time.Now())
}

// frames handles the whole frames in s.buf, received at at.
func (c *client) frames(s *subscriber, at time.Time) {
	used := 0
	for !s.dead {
		f, err := parseFrame(s.buf[used:])
		if errors.Is(err, errIncomplete) {
			break
		}
		if err != nil {
			c.problems.add(err.Error())
			c.drop(s)
			return
		}
		used += f.size
		switch f.opcode {
		case opText, opBinary:
			if s.message != nil {
				c.problems.add("a new message inside a fragmented one")
				s.message = nil
			}
			if f.fin {
				c.message(s, f.payload, at)
			} else {
				s.message = append([]byte{}, f.payload...)
			}
		case opContinuation:
			if s.message == nil {
				c.problems.add("a continuation frame outside a message")
				continue
			}
			s.message = append(s.message, f.payload...)
			if f.fin {
				c.message(s, s.message, at)
				s.message = nil
			}
		case opPing:
			c.send(s, opPong, f.payload)
		case opPong:
		case opClose:
			code := 1005 // no status
			if len(f.payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.payload))
			}
			if !c.closing.Load() {
				if code != 1000 && code != 1001 {
					c.problems.add(fmt.Sprintf("closed by the server: %d %.200s", code,
						f.payload[min(2, len(f.payload)):]))
				}
				c.send(s, opClose, f.payload[:min(2, len(f.payload))])
			}
			c.drop(s)
			return
		default:
			c.problems.add(fmt.Sprintf("frame with opcode 0x%x", f.opcode))
		}
	}
	s.buf = s.buf[:copy(s.buf, s.buf[used:])]
}

func (c *client) send(s *subscriber, opcode byte, payload []byte) {
	if err := writeAll(s.fd, appendFrame(nil, opcode, payload)); err != nil && !c.closing.Load() {
		c.problems.add(fmt.Sprintf("sending frame 0x%x: %v", opcode, err))
	}
}

// drop closes a connection (which takes it out of its epoll set).
func (c *client) drop(s *subscriber) {
	if !s.dead {
		s.dead = true
		syscall.Close(s.fd)
		c.alive.Add(-1)
	}
}

// message is client_worker's reader for one message; an error is a text counted.
func (c *client) message(s *subscriber, text []byte, at time.Time) {
	m, ok := parseMessage(text)
	if !ok {
		c.problems.add(fmt.Sprintf("not a graphql-transport-ws message: %s", text))
		return
	}
	switch m.typ {
	case "next":
		if !m.idIsOne || !m.hasData {
			c.problems.add(string(text))
			return
		}
		if !m.shaped {
			c.problems.add(fmt.Sprintf("unexpected shape: %s", text))
			return
		}
		occurred, err := s.occurred(m.occurredAt)
		if err != nil {
			c.problems.add(fmt.Sprintf("occurredAt %q: %v", m.occurredAt, err))
			return
		}
		s.loop.latencies = append(s.loop.latencies, float64(at.Sub(occurred))/float64(time.Millisecond))
		c.steps.add(m.step)
	case "ping":
		c.send(s, opText, []byte(`{"type": "pong"}`))
	case "error", "complete":
		c.problems.add(string(text))
	}
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

// open makes subscriber i and gives it to its loop.
func (c *client) open(i int, e endpoint, subscribe []byte, l *loop) error {
	conn, rest, err := handshake(e, subscribe, 120*time.Second)
	if err != nil {
		return err
	}
	fd, err := detach(conn)
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	buf := make([]byte, len(rest), max(bufferSize, cap(rest)))
	copy(buf, rest)
	s := &subscriber{fd: fd, loop: l, buf: buf}
	c.alive.Add(1)
	l.mu.Lock()
	l.members = append(l.members, s)
	if len(s.buf) > 0 {
		c.frames(s, time.Now()) // what came with the acknowledgement
	}
	dead := s.dead
	l.mu.Unlock()
	if dead {
		return nil // closed by the server already: counted as an error, if it was one
	}
	c.slots[i].Store(s)
	event := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(i)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &event); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return math.NaN()
	}
	seconds := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}

func (c *client) report(loops []*loop) []byte {
	cpu := cpuSeconds()
	line := make([]byte, 0, 1<<16)
	line = append(line, `{"latencies_ms": [`...)
	first := true
	for _, l := range loops {
		l.mu.Lock()
		for _, v := range l.latencies {
			if !first {
				line = append(line, ", "...)
			}
			first = false
			line = strconv.AppendFloat(line, math.Round(v*100)/100, 'f', -1, 64)
		}
		l.mu.Unlock()
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

// startProfile starts a CPU profile into $WSCLIENT_CPUPROFILE, if set (from the reset to the
// report: the changes' receipts): go tool pprof -top BINARY FILE.
func startProfile() {
	path := os.Getenv("WSCLIENT_CPUPROFILE")
	if path == "" {
		return
	}
	pprof.StopCPUProfile()
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsclient: WSCLIENT_CPUPROFILE: %v\n", err)
	}
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
	e, err := parseEndpoint(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsclient: %v\n", err)
		os.Exit(2)
	}
	c.slots = make([]atomic.Pointer[subscriber], count)
	loops := make([]*loop, runtime.GOMAXPROCS(0))
	for i := range loops {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			fmt.Fprintf(os.Stderr, "wsclient: epoll_create1: %v\n", err)
			os.Exit(1)
		}
		loops[i] = &loop{epfd: epfd}
		go c.run(loops[i])
	}

	started := time.Now()
	opening := make(chan struct{}, maxOpening)
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for i := range count {
		opening <- struct{}{}
		if failed.Load() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-opening }()
			if err := c.open(i, e, subscribe, loops[i%len(loops)]); err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		fmt.Fprintf(os.Stderr, "wsclient: %v\n", *err)
		os.Exit(1)
	}
	c.raw.Store(true)
	stdout.say([]byte(`{"ready": ` + strconv.FormatFloat(time.Since(started).Seconds(), 'f', -1, 64) +
		`}`))

	commands := bufio.NewScanner(os.Stdin)
	for commands.Scan() {
		command := strings.TrimSpace(commands.Text())
		if command == "reset" {
			startProfile()
			for _, l := range loops {
				l.mu.Lock()
				l.latencies = l.latencies[:0]
				l.mu.Unlock()
			}
			stdout.say([]byte(`{"reset": true, "cpu_s": ` +
				strconv.FormatFloat(cpuSeconds(), 'f', -1, 64) + `}`))
		} else if command == "report" || command == "" {
			break
		}
	}
	pprof.StopCPUProfile()
	stdout.say(c.report(loops))

	// Close as the Python worker does: a close frame each, then the server's reply (or the
	// end of the connection), for at most 10 s.
	c.closing.Store(true)
	goodbye := binary.BigEndian.AppendUint16(nil, 1000)
	for _, l := range loops {
		l.mu.Lock()
		for _, s := range l.members {
			if !s.dead {
				c.send(s, opClose, goodbye)
			}
		}
		l.mu.Unlock()
	}
	for deadline := time.Now().Add(10 * time.Second); c.alive.Load() > 0; {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}
