package main

// The WebSocket client side (RFC 6455) that the worker needs: a handshake with the
// graphql-transport-ws subprotocol, unmasked frames from the server, masked frames to it, no
// extensions. After its subscription is sent, a connection leaves Go's network poller for
// an epoll loop of this process that makes one read system call per readiness, where a
// goroutine per connection made two (the second only to learn that nothing more had come).

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	bufferSize = 4096 // per connection; grows for a larger frame
)

var errIncomplete = errors.New("incomplete frame")

// frame is one parsed frame header and its payload (in the buffer it was read into).
type frame struct {
	fin     bool
	opcode  byte
	payload []byte
	size    int // header and payload
}

// parseFrame reads the frame at the start of b: errIncomplete if b holds only part of it.
func parseFrame(b []byte) (frame, error) {
	if len(b) < 2 {
		return frame{}, errIncomplete
	}
	f := frame{fin: b[0]&0x80 != 0, opcode: b[0] & 0x0F}
	if b[0]&0x70 != 0 {
		return f, fmt.Errorf("frame with reserved bits 0x%02x (no extension was negotiated)", b[0])
	}
	if b[1]&0x80 != 0 {
		return f, errors.New("masked frame from the server")
	}
	length, header := uint64(b[1]&0x7F), 2
	switch length {
	case 126:
		if len(b) < 4 {
			return f, errIncomplete
		}
		length, header = uint64(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		if len(b) < 10 {
			return f, errIncomplete
		}
		length, header = binary.BigEndian.Uint64(b[2:10]), 10
		if length > 1<<30 {
			return f, fmt.Errorf("frame of %d bytes", length)
		}
	}
	if f.opcode >= opClose && (!f.fin || length > 125) {
		return f, fmt.Errorf("control frame 0x%x fragmented or of %d bytes", f.opcode, length)
	}
	if uint64(len(b)-header) < length {
		return f, errIncomplete
	}
	f.size = header + int(length)
	f.payload = b[header:f.size]
	return f, nil
}

// appendFrame appends a client frame (final, masked) to b.
func appendFrame(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, 0x80|opcode)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i&3])
	}
	return b
}

// endpoint is where to connect and what to ask for.
type endpoint struct {
	address string // host:port
	host    string // the Host header
	path    string
}

func parseEndpoint(raw string) (endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, err
	}
	if u.Scheme != "ws" {
		return endpoint{}, fmt.Errorf("%s: only ws:// URLs (no TLS)", raw)
	}
	address := u.Host
	if u.Port() == "" {
		address = net.JoinHostPort(u.Hostname(), "80")
	}
	return endpoint{address: address, host: u.Host, path: u.RequestURI()}, nil
}

// handshake opens a connection: the HTTP upgrade, connection_init, connection_ack, and the
// subscribe message. It returns the connection and the bytes read past the acknowledgement.
func handshake(e endpoint, subscribe []byte, timeout time.Duration) (net.Conn, []byte, error) {
	conn, err := net.DialTimeout("tcp", e.address, timeout)
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	fail := func(err error) (net.Conn, []byte, error) {
		conn.Close()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	request := "GET " + e.path + " HTTP/1.1\r\nHost: " + e.host + "\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
	if _, err := io.WriteString(conn, request); err != nil {
		return fail(fmt.Errorf("handshake: %w", err))
	}
	buf := make([]byte, 0, bufferSize)
	end := -1
	for end < 0 {
		if buf, err = readMore(conn, buf); err != nil {
			return fail(fmt.Errorf("handshake response: %w", err))
		}
		end = bytes.Index(buf, []byte("\r\n\r\n"))
	}
	head := string(buf[:end])
	buf = buf[:copy(buf, buf[end+4:])]
	lines := strings.Split(head, "\r\n")
	if !strings.HasPrefix(lines[0], "HTTP/1.1 101 ") {
		return fail(fmt.Errorf("handshake refused: %s", lines[0]))
	}
	digest := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	accept, protocol := "", ""
	for _, line := range lines[1:] {
		name, value, _ := strings.Cut(line, ":")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "sec-websocket-accept":
			accept = strings.TrimSpace(value)
		case "sec-websocket-protocol":
			protocol = strings.TrimSpace(value)
		case "sec-websocket-extensions":
			return fail(fmt.Errorf("handshake: extensions not offered were accepted: %s", value))
		}
	}
	if accept != base64.StdEncoding.EncodeToString(digest[:]) {
		return fail(fmt.Errorf("handshake: Sec-WebSocket-Accept %q does not match", accept))
	}
	if protocol != "graphql-transport-ws" {
		return fail(fmt.Errorf("handshake: subprotocol %q, not graphql-transport-ws", protocol))
	}
	init := appendFrame(nil, opText, []byte(`{"type": "connection_init", "payload": {}}`))
	if _, err := conn.Write(init); err != nil {
		return fail(fmt.Errorf("connection_init: %w", err))
	}
	for {
		f, err := parseFrame(buf)
		if errors.Is(err, errIncomplete) {
			if buf, err = readMore(conn, buf); err != nil {
				return fail(fmt.Errorf("waiting for connection_ack: %w", err))
			}
			continue
		}
		if err != nil {
			return fail(err)
		}
		payload := f.payload
		buf = buf[:copy(buf, buf[f.size:])]
		switch {
		case f.opcode == opPing:
			if _, err := conn.Write(appendFrame(nil, opPong, payload)); err != nil {
				return fail(fmt.Errorf("pong: %w", err))
			}
			continue
		case f.opcode == opPong:
			continue
		case f.opcode == opText && f.fin:
			if m, ok := parseMessage(payload); ok && m.typ == "connection_ack" {
				if _, err := conn.Write(appendFrame(nil, opText, subscribe)); err != nil {
					return fail(fmt.Errorf("subscribe: %w", err))
				}
				_ = conn.SetDeadline(time.Time{})
				return conn, buf, nil
			}
		}
		return fail(fmt.Errorf("expected connection_ack, got frame 0x%x %.300s", f.opcode, payload))
	}
}

// readMore reads into buf's free space (growing it when full).
func readMore(r io.Reader, buf []byte) ([]byte, error) {
	if len(buf) == cap(buf) {
		buf = append(buf, make([]byte, cap(buf))...)[:len(buf)]
	}
	n, err := r.Read(buf[len(buf):cap(buf)])
	return buf[:len(buf)+n], err
}

// detach takes a connection's socket from Go's network poller: a duplicate descriptor
// (non-blocking, as the original), and the original closed.
func detach(conn net.Conn) (int, error) {
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		return -1, fmt.Errorf("not a TCP connection: %T", conn)
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(original uintptr) {
		fd, dupErr = syscall.Dup(int(original))
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	syscall.CloseOnExec(fd)
	conn.Close() // removes the original from Go's poller; the socket stays open for fd
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// writeAll writes b to a non-blocking socket (small frames: a full send buffer is waited out
// for at most a second).
func writeAll(fd int, b []byte) error {
	deadline := time.Now().Add(time.Second)
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EAGAIN || err == syscall.EINTR {
			if time.Now().After(deadline) {
				return errors.New("send buffer full for a second")
			}
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
