// Package logbuf is a buffer that a server's or agent's logger and a test
// may use at once: tests read what a running component has logged.
package logbuf

import (
	"bytes"
	"sync"
)

// Buffer collects output; safe for concurrent Write and reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Len is how much was written so far (an offset for Since).
func (s *Buffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// Since is what was written after offset off.
func (s *Buffer) Since(off int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b.Bytes()[off:])
}
