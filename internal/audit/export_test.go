package audit

// Queued reports how many appends wait for a batch (tests: to know a batch
// is gathering without timing assumptions).
func (t *Trail) Queued() int {
	t.batch.mu.Lock()
	defer t.batch.mu.Unlock()
	return len(t.batch.queue)
}

// WithSeq and WithMac expose the splicing encoders to the equality test.
var (
	WithSeq           = withSeq
	WithMac           = withMac
	CanonicalTemplate = canonicalTemplate
)
