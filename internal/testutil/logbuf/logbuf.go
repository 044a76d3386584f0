// Package logbuf is a buffer that a server's or agent's logger and a test
// may use at once: tests read what a running component has logged.
package logbuf

import (
	"strings"
	"sync"
)

// Buffer is a strings.Builder safe for concurrent Write and String.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
