package kmsapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// Stream is a handler result sent as a raw body (application/octet-stream,
// chunked) instead of a rendered JSON or XML document: BackupDeployment's
// backup file, which may be far larger than any response we would buffer.
//
// Write produces the body. An error before its first byte is answered as
// usual (status, code, error body). After the first byte the status is
// sent and cannot change, so a failure cuts the connection instead: the
// chunked body is never terminated and the client sees a truncated
// response, never a short one that looks complete.
type Stream struct {
	Write func(ctx context.Context, w io.Writer) error
}

const (
	contentTypeStream = "application/octet-stream"
	// streamHoldBack is how many final bytes of a stream leave only after
	// its outcome is in the audit trail (the size of a gzip trailer: its
	// CRC and length). A stream whose outcome cannot be recorded is cut
	// before them and fails its reader's check, which keeps the fail-closed
	// rule for a response that cannot wait until it is complete.
	streamHoldBack = 8
	// streamWriteIdle bounds one write to the client: a reader that stops
	// reading must not hold the storage snapshot (and shutdown) forever.
	streamWriteIdle = 2 * time.Minute
)

// streamWriter sends the headers at the first byte and holds back the
// stream's last streamHoldBack bytes.
type streamWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	c       *apiCall
	started bool
	tail    []byte
	sent    int64
	werr    error // the first failed write to the client
}

func (sw *streamWriter) start() {
	if sw.started {
		return
	}
	sw.started = true
	h := sw.w.Header()
	h.Set("x-acs-request-id", sw.c.id)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", contentTypeStream)
	h.Set("X-Content-Type-Options", "nosniff")
	sw.w.WriteHeader(http.StatusOK)
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	if sw.werr != nil {
		return 0, sw.werr
	}
	if len(p) == 0 {
		return 0, nil
	}
	sw.start()
	buf := append(sw.tail, p...)
	n := len(buf) - streamHoldBack
	if n <= 0 {
		sw.tail = buf
		return len(p), nil
	}
	if err := sw.send(buf[:n]); err != nil {
		return 0, err
	}
	sw.tail = append(sw.tail[:0:0], buf[n:]...)
	return len(p), nil
}

func (sw *streamWriter) send(b []byte) error {
	_ = sw.rc.SetWriteDeadline(time.Now().Add(streamWriteIdle)) // unsupported writers (tests) have none
	n, err := sw.w.Write(b)
	sw.sent += int64(n)
	if err != nil {
		sw.werr = err
	}
	return err
}

// sendStream runs a Stream result: write it, record the outcome, then
// release the held-back tail. An audit failure or a failure after the
// first byte cuts the connection (http.ErrAbortHandler).
func (s *Server) sendStream(ctx context.Context, w http.ResponseWriter, c *apiCall, st *Stream) {
	sw := &streamWriter{w: w, rc: http.NewResponseController(w), c: c}
	err := invokeStream(ctx, st, sw)
	if err != nil && !sw.started {
		// Nothing sent yet: an ordinary error response.
		status, code, body := s.render(c, nil, err)
		if s.cfg.Audit != nil {
			if aerr := s.record(ctx, c, false, status, code); aerr != nil {
				status, code, body = s.render(c, nil, aerr)
			}
		}
		s.send(w, c, status, code, body)
		return
	}
	status, code := http.StatusOK, ""
	if err != nil {
		wc, _ := classify(err)
		code = wc.Code
		if sw.werr != nil {
			// The client went away or stopped reading: not our failure.
			s.log.Warn("api: stream cut short by the client", "request_id", c.id, "action", c.action, "sent", sw.sent, "err", err)
		} else {
			s.log.Error("api: stream failed after its first byte; connection cut", "request_id", c.id, "action", c.action, "sent", sw.sent, "err", err)
		}
	}
	if s.cfg.Audit != nil {
		if aerr := s.record(ctx, c, false, status, code); aerr != nil && err == nil {
			err = aerr
		}
	}
	if err == nil {
		sw.start()
		err = sw.send(sw.tail)
	}
	s.log.Debug("api: request", "request_id", c.id, "action", c.action, "version", c.version,
		"access_key_id", c.accessKeyID, "status", status, "code", code, "bytes", sw.sent, "duration", s.cfg.Now().Sub(c.start))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
}

// invokeStream runs Write, turning a panic into an error as invokeHandler
// does for handlers.
func invokeStream(ctx context.Context, st *Stream, w io.Writer) (err error) {
	if st.Write == nil {
		return errors.New("kmsapi: stream without a writer")
	}
	_, err = invokeHandler(ctx, func(ctx context.Context, _ *Request) (any, error) {
		return nil, st.Write(ctx, w)
	}, nil)
	return err
}
