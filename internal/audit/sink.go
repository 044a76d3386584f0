package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// FileSink forwards records as JSON lines to a file (mode 0600), for a SIEM
// agent to tail. It is a copy: the chain in the store stays the record of
// truth, and a line lost to a crash is still in ExportAuditEvents.
type FileSink struct {
	mu sync.Mutex
	f  *os.File
}

var _ Forwarder = (*FileSink)(nil)

// OpenFileSink opens path for appending, creating it with mode 0600 and
// tightening an existing file to 0600.
func OpenFileSink(path string) (*FileSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit file: %w", err)
	}
	return &FileSink{f: f}, nil
}

// Forward appends r as one line.
func (s *FileSink) Forward(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err = s.f.Write(b)
	return err
}

// Close closes the file.
func (s *FileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}
