package bastion

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// session is one operator connection through the bastion.
type session struct {
	id, operator, key, source, user string
	hostID, hostName, account       string
	start                           time.Time
	grant                           Grant

	conn   *ssh.ServerConn
	mu     sync.Mutex
	target ssh.Conn
	chans  []ssh.Channel // the operator's open session channels, for a parting message
	killed string

	in, out atomic.Int64 // bytes operator→host and host→operator
	exit    atomic.Int64 // last exit status; -1 none
}

// kill ends the session, telling the operator why on each open session
// channel first.
func (ss *session) kill(reason string) {
	ss.mu.Lock()
	if ss.killed == "" {
		ss.killed = reason
	}
	chans := append([]ssh.Channel(nil), ss.chans...)
	t := ss.target
	ss.mu.Unlock()
	for _, ch := range chans {
		fmt.Fprintf(ch.Stderr(), "\r\nkeyhold bastion: session ended: %s\r\n", reason)
	}
	if t != nil {
		t.Close()
	}
	ss.conn.Close()
}

// refusal is an error whose message is shown to the operator as is.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refusef(format string, a ...any) error { return &refusal{fmt.Sprintf(format, a...)} }

func (s *Server) handle(nc net.Conn) {
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake only
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.sshCfg)
	if err != nil {
		s.log.Debug("handshake ended", "source", nc.RemoteAddr().String(), "err", err)
		return
	}
	nc.SetDeadline(time.Time{})
	ss := &session{id: newID(), operator: sc.Permissions.Extensions["operator"], key: sc.Permissions.Extensions["key"],
		source: nc.RemoteAddr().String(), user: sc.User(), start: time.Now().UTC(), conn: sc}
	ss.exit.Store(-1)
	s.mu.Lock()
	s.live[ss.id] = ss
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.live, ss.id)
		s.mu.Unlock()
	}()

	host, acct, err := s.authorize(ss)
	if err != nil {
		s.log.Warn("refused", "session", ss.id, "operator", ss.operator, "source", ss.source, "user", ss.user, "reason", err.Error())
		s.slog.refused(ss.operator, ss.source, ss.user, err.Error())
		go ssh.DiscardRequests(reqs)
		s.tellAndClose(ss, chans, err.Error())
		return
	}
	s.slog.started(ss)
	s.log.Info("session start", "session", ss.id, "operator", ss.operator, "source", ss.source, "host", ss.hostID, "account", ss.account)

	// Log in to the host while the operator's client opens its channels.
	type dialed struct {
		c     ssh.Conn
		chans <-chan ssh.NewChannel
		err   error
	}
	ready := make(chan dialed, 1)
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
		defer cancel()
		c, tchans, treqs, err := s.connectTarget(ctx, ss, host, acct)
		if err == nil {
			go ssh.DiscardRequests(treqs)
		}
		ready <- dialed{c, tchans, err}
	}()

	var d dialed
	select {
	case d = <-ready:
	case <-s.ctx.Done():
		sc.Close()
		return
	}
	result := "ok"
	if d.err != nil {
		msg := d.err.Error()
		var r *refusal
		if !errors.As(d.err, &r) {
			msg = "cannot log in to " + ss.hostName + ": " + msg
		}
		s.log.Warn("refused", "session", ss.id, "operator", ss.operator, "host", ss.hostID, "account", ss.account, "reason", msg)
		go ssh.DiscardRequests(reqs)
		s.tellAndClose(ss, chans, msg)
		s.slog.ended(ss, "refused: "+msg)
		return
	}
	ss.mu.Lock()
	ss.target = d.c
	killed := ss.killed
	ss.mu.Unlock()
	if killed != "" {
		d.c.Close()
		sc.Close()
	}
	go s.globalRequests(ss, reqs, d.c)
	go s.targetChannels(ss, d.chans)
	// When the host drops the connection, so does the bastion.
	go func() {
		d.c.Wait()
		sc.Close()
	}()
	var wg sync.WaitGroup
	for nch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.operatorChannel(ss, nch, d.c)
		}()
	}
	d.c.Close()
	wg.Wait()
	ss.mu.Lock()
	if ss.killed != "" {
		result = "ended: " + ss.killed
	}
	ss.mu.Unlock()
	s.slog.ended(ss, result)
	s.log.Info("session end", "session", ss.id, "operator", ss.operator, "host", ss.hostID, "account", ss.account,
		"bytes_in", ss.in.Load(), "bytes_out", ss.out.Load(), "exit_status", ss.exit.Load(), "result", result)
}

// authorize resolves ACCOUNT@HOST and checks the operator's grant.
func (s *Server) authorize(ss *session) (*Host, *Account, error) {
	account, hostRef, err := ParseTarget(ss.user)
	if err != nil {
		return nil, nil, err
	}
	st, err := s.cfg.Dir.Load()
	if err != nil {
		return nil, nil, refusef("the bastion cannot read its inventory")
	}
	h := st.Host(hostRef)
	if h == nil {
		return nil, nil, refusef("unknown host %q", hostRef)
	}
	a := h.Account(account)
	if a == nil {
		return nil, nil, refusef("host %s has no account %q", hostRef, account)
	}
	g := st.Grant(ss.operator, h.ID, account)
	if g == nil {
		return nil, nil, refusef("operator %s has no grant for %s@%s", ss.operator, account, hostRef)
	}
	ss.hostID, ss.hostName, ss.account, ss.grant = h.ID, hostRef, account, *g
	return h, a, nil
}

// tellAndClose answers the operator's first session channel with msg on
// stderr and exit status 255 (ssh's own "could not connect"), then closes.
func (s *Server) tellAndClose(ss *session, chans <-chan ssh.NewChannel, msg string) {
	defer ss.conn.Close()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		var nch ssh.NewChannel
		var ok bool
		select {
		case nch, ok = <-chans:
			if !ok {
				return
			}
		case <-timer.C:
			return
		}
		if nch.ChannelType() != "session" {
			nch.Reject(ssh.Prohibited, "keyhold bastion: "+msg)
			continue
		}
		ch, reqs, err := nch.Accept()
		if err != nil {
			return
		}
		for r := range reqs {
			switch r.Type {
			case "shell", "exec", "subsystem":
				r.Reply(true, nil)
				fmt.Fprintf(ch.Stderr(), "keyhold bastion: %s\r\n", msg)
				ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, 255))
				ch.Close()
			default:
				if r.WantReply {
					r.Reply(r.Type == "pty-req" || r.Type == "env", nil)
				}
			}
		}
		// Then wait for the client to hang up (or the timer), so that it
		// is not cut off while saying goodbye.
	}
}

// operatorChannel bridges one channel the operator opened.
func (s *Server) operatorChannel(ss *session, nch ssh.NewChannel, target ssh.Conn) {
	switch nch.ChannelType() {
	case "session":
	case "direct-tcpip":
		if !ss.grant.PortForwarding {
			s.log.Info("refused port forwarding", "session", ss.id, "operator", ss.operator)
			nch.Reject(ssh.Prohibited, "keyhold bastion: port forwarding is not allowed by your grant")
			return
		}
	default:
		nch.Reject(ssh.UnknownChannelType, "keyhold bastion: channel type "+nch.ChannelType()+" is not supported")
		return
	}
	tch, treqs, err := target.OpenChannel(nch.ChannelType(), nch.ExtraData())
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			nch.Reject(oce.Reason, oce.Message)
		} else {
			nch.Reject(ssh.ConnectionFailed, "keyhold bastion: the host refused the channel")
		}
		return
	}
	och, oreqs, err := nch.Accept()
	if err != nil {
		tch.Close()
		return
	}
	if nch.ChannelType() == "session" {
		ss.mu.Lock()
		ss.chans = append(ss.chans, och)
		ss.mu.Unlock()
		defer func() {
			ss.mu.Lock()
			for i, c := range ss.chans {
				if c == och {
					ss.chans = append(ss.chans[:i], ss.chans[i+1:]...)
					break
				}
			}
			ss.mu.Unlock()
		}()
	}
	filter := func(r *ssh.Request) bool {
		switch r.Type {
		case "auth-agent-req@openssh.com":
			if !ss.grant.AgentForwarding {
				fmt.Fprintf(och.Stderr(), "keyhold bastion: agent forwarding is not allowed by your grant\r\n")
				return false
			}
		case "x11-req":
			fmt.Fprintf(och.Stderr(), "keyhold bastion: X11 forwarding is not supported\r\n")
			return false
		}
		return true
	}
	bridge(ss, och, oreqs, tch, treqs, filter)
}

// targetChannels bridges channels the host opens towards the operator:
// agent and remote-forwarded connections, each only when the grant allows.
func (s *Server) targetChannels(ss *session, chans <-chan ssh.NewChannel) {
	for nch := range chans {
		allowed := false
		switch nch.ChannelType() {
		case "auth-agent@openssh.com":
			allowed = ss.grant.AgentForwarding
		case "forwarded-tcpip":
			allowed = ss.grant.PortForwarding
		}
		if !allowed {
			nch.Reject(ssh.Prohibited, "not allowed by the bastion")
			continue
		}
		och, oreqs, err := ss.conn.OpenChannel(nch.ChannelType(), nch.ExtraData())
		if err != nil {
			nch.Reject(ssh.ConnectionFailed, "the operator refused the channel")
			continue
		}
		tch, treqs, err := nch.Accept()
		if err != nil {
			och.Close()
			continue
		}
		go bridge(ss, och, oreqs, tch, treqs, func(*ssh.Request) bool { return true })
	}
}

// globalRequests passes the operator's remote-forwarding requests on when
// the grant allows them and refuses everything else.
func (s *Server) globalRequests(ss *session, reqs <-chan *ssh.Request, target ssh.Conn) {
	for r := range reqs {
		switch r.Type {
		case "tcpip-forward", "cancel-tcpip-forward":
			if ss.grant.PortForwarding {
				ok, payload, _ := target.SendRequest(r.Type, r.WantReply, r.Payload)
				r.Reply(ok, payload)
				continue
			}
			s.log.Info("refused remote port forwarding", "session", ss.id, "operator", ss.operator)
		}
		if r.WantReply {
			r.Reply(false, nil)
		}
	}
}

// bridge copies data and requests between the operator's channel och and
// the host's channel tch until both are done. filter decides which of the
// operator's requests go through.
func bridge(ss *session, och ssh.Channel, oreqs <-chan *ssh.Request, tch ssh.Channel, treqs <-chan *ssh.Request, filter func(*ssh.Request) bool) {
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { // operator → host requests
		defer wg.Done()
		for r := range oreqs {
			if !filter(r) {
				if r.WantReply {
					r.Reply(false, nil)
				}
				continue
			}
			ok, err := tch.SendRequest(r.Type, r.WantReply, r.Payload)
			if r.WantReply {
				r.Reply(ok && err == nil, nil)
			}
		}
	}()
	hostDone := make(chan struct{})
	go func() { // host → operator requests: exit-status, exit-signal, eow
		defer wg.Done()
		for r := range treqs {
			if r.Type == "exit-status" && len(r.Payload) == 4 {
				ss.exit.Store(int64(binary.BigEndian.Uint32(r.Payload)))
			}
			ok, _ := och.SendRequest(r.Type, r.WantReply, r.Payload)
			if r.WantReply {
				r.Reply(ok, nil)
			}
		}
		// treqs closes when the host closed the channel: every request
		// has been passed on, so the operator's side can close now.
		close(hostDone)
	}()
	go func() { // stdin
		defer wg.Done()
		n, _ := io.Copy(tch, och)
		ss.in.Add(n)
		tch.CloseWrite()
	}()
	outDone := make(chan struct{})
	go func() { // stdout and stderr
		defer wg.Done()
		defer close(outDone)
		var inner sync.WaitGroup
		inner.Add(1)
		go func() {
			defer inner.Done()
			n, _ := io.Copy(och.Stderr(), tch.Stderr())
			ss.out.Add(n)
		}()
		n, _ := io.Copy(och, tch)
		ss.out.Add(n)
		inner.Wait()
		och.CloseWrite()
	}()
	// Close only after the host closed and all its output was passed on.
	<-outDone
	<-hostDone
	och.Close()
	tch.Close()
	wg.Wait()
}
