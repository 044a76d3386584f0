package bastion

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"
)

// SessionRecord is one line of DIR/sessions.jsonl. A session writes a
// "start" line when the operator is authorised and an "end" line when it is
// over; a refused connection writes one "refused" line. There is no field
// for a value: only names, addresses, times and counts.
type SessionRecord struct {
	Event      string    `json:"event"` // start, end, refused
	ID         string    `json:"id,omitempty"`
	Operator   string    `json:"operator,omitempty"`
	Source     string    `json:"source,omitempty"`
	User       string    `json:"user,omitempty"` // the SSH user string as given
	Host       string    `json:"host,omitempty"`
	Account    string    `json:"account,omitempty"`
	Time       time.Time `json:"time"`
	BytesIn    int64     `json:"bytes_in,omitempty"`
	BytesOut   int64     `json:"bytes_out,omitempty"`
	ExitStatus *int64    `json:"exit_status,omitempty"`
	Result     string    `json:"result,omitempty"`
}

// Session is a session as `keyhold bastion sessions` shows it.
type Session struct {
	ID         string     `json:"ID"`
	Operator   string     `json:"Operator"`
	Source     string     `json:"Source"`
	Host       string     `json:"Host"`
	Account    string     `json:"Account"`
	Start      time.Time  `json:"Start"`
	End        *time.Time `json:"End,omitempty"`
	BytesIn    int64      `json:"BytesIn"`
	BytesOut   int64      `json:"BytesOut"`
	ExitStatus *int64     `json:"ExitStatus,omitempty"`
	State      string     `json:"State"` // open, closed, refused
	Result     string     `json:"Result,omitempty"`
}

type sessionLog struct {
	mu   sync.Mutex
	path string
}

func (l *sessionLog) write(r SessionRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, _ := json.Marshal(r)
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	f.Write(append(b, '\n'))
	f.Close()
}

func (l *sessionLog) refused(operator, source, user, reason string) {
	l.write(SessionRecord{Event: "refused", ID: newID(), Operator: operator, Source: source, User: user, Time: time.Now().UTC(), Result: reason})
}

func (l *sessionLog) started(ss *session) {
	l.write(SessionRecord{Event: "start", ID: ss.id, Operator: ss.operator, Source: ss.source, User: ss.user,
		Host: ss.hostID, Account: ss.account, Time: ss.start})
}

func (l *sessionLog) ended(ss *session, result string) {
	r := SessionRecord{Event: "end", ID: ss.id, Time: time.Now().UTC(), BytesIn: ss.in.Load(), BytesOut: ss.out.Load(), Result: result}
	if e := ss.exit.Load(); e >= 0 {
		r.ExitStatus = &e
	}
	l.write(r)
}

// Sessions reads the session log, oldest first.
func (d *Dir) Sessions() ([]Session, error) {
	f, err := os.Open(d.file(sessionFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	byID := map[string]*Session{}
	var order []*Session
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r SessionRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a torn last line after a crash
		}
		switch r.Event {
		case "start", "refused":
			s := &Session{ID: r.ID, Operator: r.Operator, Source: r.Source, Host: r.Host, Account: r.Account, Start: r.Time, State: "open"}
			if r.Event == "refused" {
				s.State, s.Result, s.End = "refused", r.Result, &r.Time
				if s.Host == "" {
					s.Account = r.User
				}
			}
			byID[r.ID] = s
			order = append(order, s)
		case "end":
			s := byID[r.ID]
			if s == nil {
				continue
			}
			t := r.Time
			s.End, s.BytesIn, s.BytesOut, s.ExitStatus, s.Result = &t, r.BytesIn, r.BytesOut, r.ExitStatus, r.Result
			s.State = "closed"
			if len(r.Result) > 8 && r.Result[:8] == "refused:" {
				s.State = "refused"
			}
		}
	}
	out := make([]Session, len(order))
	for i, s := range order {
		out[i] = *s
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, sc.Err()
}

var idRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// RequestKill asks the running bastion to end session id; it returns once
// the request is filed (the bastion picks it up within its watch interval).
func (d *Dir) RequestKill(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%q is not a session id (16 hex digits, see keyhold bastion sessions)", id)
	}
	ss, err := d.Sessions()
	if err != nil {
		return err
	}
	for _, s := range ss {
		if s.ID == id {
			if s.State != "open" {
				return fmt.Errorf("session %s is not open (%s)", id, s.State)
			}
			return os.WriteFile(filepath.Join(d.Path, killDir, id), nil, 0o600)
		}
	}
	return fmt.Errorf("no session %s", id)
}
