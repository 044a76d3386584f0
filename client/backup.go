package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"time"
)

// DownloadBackup calls BackupDeployment and copies the backup file the
// server streams (a keyhold backup: every record as stored, ciphertext
// only, from one consistent snapshot; the root key is never in it) to w.
// It returns the bytes written. Only the root of the deployment's first
// account may call it.
//
// A download cut short is an error (the server never ends a failed stream
// cleanly), but w may then hold a partial file: write to a temporary file
// and keep it only on success, after checking it (keyhold backup does).
// It is never retried, since w cannot be rewound.
func (c *Client) DownloadBackup(ctx context.Context, w io.Writer) (int64, error) {
	return c.CallStream(ctx, VersionKeyhold, "BackupDeployment", nil, w)
}

// CallStream invokes an action whose successful response is a raw body
// (application/octet-stream) and copies that body to w. Errors are *Error
// as for Call. The client's Timeout does not bound the whole transfer here
// (a backup may take long): it bounds the wait for the response and each
// pause between received bytes.
func (c *Client) CallStream(ctx context.Context, version, action string, params map[string]string, w io.Writer) (int64, error) {
	if version == "" || action == "" {
		return 0, errors.New("client: version and action are required")
	}
	p := make(map[string]string, len(params)+1)
	for k, v := range params {
		p[k] = v
	}
	if _, ok := p["RegionId"]; !ok {
		p["RegionId"] = c.region
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := newIdleTimer(c.hc.Timeout, func() {
		cancel(fmt.Errorf("client: %s: no data from the server for %s", action, c.hc.Timeout))
	})
	defer idle.stop()

	req, err := c.newRequest(ctx, version, action, p)
	if err != nil {
		return 0, err
	}
	hc := *c.hc
	hc.Timeout = 0 // replaced by the idle timer
	resp, err := hc.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			return 0, cause
		}
		return 0, fmt.Errorf("client: %s: %w", action, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		if err != nil {
			return 0, fmt.Errorf("client: %s: reading error response: %w", action, err)
		}
		return 0, decodeError(resp.StatusCode, body)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/octet-stream" {
		// A server without the action's stream, or something else answering.
		return 0, fmt.Errorf("client: %s: unexpected response type %q (want application/octet-stream)", action, resp.Header.Get("Content-Type"))
	}
	n, err := io.Copy(w, &idleReader{r: resp.Body, t: idle})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return n, fmt.Errorf("client: %s: download cut short after %d bytes: %w", action, n, err)
	}
	return n, nil
}

// idleTimer fires when reset is not called for d (never when d <= 0).
type idleTimer struct {
	t *time.Timer
	d time.Duration
}

func newIdleTimer(d time.Duration, fire func()) *idleTimer {
	it := &idleTimer{d: d}
	if d > 0 {
		it.t = time.AfterFunc(d, fire)
	}
	return it
}

func (it *idleTimer) reset() {
	if it.t == nil {
		return
	}
	it.t.Reset(it.d)
}

func (it *idleTimer) stop() {
	if it.t != nil {
		it.t.Stop()
	}
}

type idleReader struct {
	r io.Reader
	t *idleTimer
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.reset()
	}
	return n, err
}
