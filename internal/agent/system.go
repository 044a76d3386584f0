package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/internal/agentapi/wire"
)

// Command operations (the same strings as the server's fleet package).
const (
	OpPasswordApply   = "password.apply"
	OpPasswordRestore = "password.restore"
	OpSSHKeyApply     = "sshkey.apply"
	OpSSHKeyCleanup   = "sshkey.cleanup"
	OpSSHKeyRestore   = "sshkey.restore"
)

// System is what the agent does on its host. The real one (Unix) changes
// real accounts; benchmarks plug in a simulated one.
type System interface {
	Inventory(ctx context.Context) (wire.Inventory, error)
	// Execute carries out one command and returns its result; fault is
	// called at the test hook points ("after-apply", "after-verify").
	Execute(ctx context.Context, cmd wire.Command, fault func(point string)) wire.Result
	// Drift returns changes to managed accounts since the last call that
	// Keyhold did not make (the first call only records the baseline).
	Drift(ctx context.Context) ([]wire.DriftEvent, error)
}

// Unix is the real host: /etc/passwd, /etc/shadow, chpasswd, usermod,
// authorized_keys and the local sshd.
type Unix struct {
	SSHDAddr      string // local sshd used to verify logins
	SSHDConfig    string // sshd_config for sshd -T ("" = sshd's default)
	SSHDPath      string // default /usr/sbin/sshd
	AdvertiseAddr string
	AllowUsers    []string // root and system users that may be changed
	Version       string

	PasswdPath, ShadowPath string // default /etc/passwd, /etc/shadow

	journal *journal
	dataDir string

	mu       sync.Mutex // one change at a time; drift scans see no half-applied state
	baseline map[string]userState
	keysMu   sync.Mutex // guards hostKeys and the settings cache (used while a change holds mu)
	hostKeys []ssh.PublicKey
	sshdT    map[string]cachedSettings
}

// sshd -T costs a fraction of a second per user; its answer is reused for
// a short while (the settings rarely change, and a stale answer only picks
// the other kind of check).
const settingsTTL = time.Minute

type cachedSettings struct {
	s  sshdSettings
	at time.Time
}

func (u *Unix) sshdSettings(ctx context.Context, user string) (sshdSettings, error) {
	u.keysMu.Lock()
	c, ok := u.sshdT[user]
	u.keysMu.Unlock()
	if ok && time.Since(c.at) < settingsTTL {
		return c.s, nil
	}
	s, err := effectiveSettings(ctx, u.SSHDPath, u.SSHDConfig, user)
	if err != nil {
		return s, err
	}
	u.keysMu.Lock()
	if u.sshdT == nil {
		u.sshdT = map[string]cachedSettings{}
	}
	u.sshdT[user] = cachedSettings{s, time.Now()}
	u.keysMu.Unlock()
	return s, nil
}

// userState is the drift baseline of one account (hashes only).
type userState struct {
	Shadow string `json:"shadow"`
	Keys   string `json:"keys"`
}

func (u *Unix) init(dataDir string, j *journal) {
	u.dataDir, u.journal = dataDir, j
	if u.SSHDPath == "" {
		u.SSHDPath = "/usr/sbin/sshd"
	}
	if u.PasswdPath == "" {
		u.PasswdPath = "/etc/passwd"
	}
	if u.ShadowPath == "" {
		u.ShadowPath = "/etc/shadow"
	}
	if u.SSHDAddr == "" {
		u.SSHDAddr = "127.0.0.1:22"
	}
}

type passwdEntry struct {
	Name     string
	UID, GID int
	Home     string
}

func (u *Unix) users() ([]passwdEntry, error) {
	b, err := os.ReadFile(u.PasswdPath)
	if err != nil {
		return nil, err
	}
	var out []passwdEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 7 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{Name: f[0], UID: uid, GID: gid, Home: f[5]})
	}
	return out, nil
}

func (u *Unix) lookup(name string) (passwdEntry, bool) {
	users, err := u.users()
	if err != nil {
		return passwdEntry{}, false
	}
	for _, p := range users {
		if p.Name == name {
			return p, true
		}
	}
	return passwdEntry{}, false
}

// allowed: ordinary users (UID ≥ 1000, not nobody), and root or system
// users only when named in AllowUsers.
func (u *Unix) allowed(p passwdEntry) bool {
	if slices.Contains(u.AllowUsers, p.Name) {
		return true
	}
	return p.UID >= 1000 && p.UID != 65534
}

// shadowHash returns the password field of user's shadow entry.
func (u *Unix) shadowHash(user string) (string, error) {
	b, err := os.ReadFile(u.ShadowPath)
	if err != nil {
		return "", err
	}
	defer clear(b)
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if ok && name == user {
			hash, _, _ := strings.Cut(rest, ":")
			return hash, nil
		}
	}
	return "", fmt.Errorf("user has no shadow entry")
}

func locked(hash string) bool { return strings.HasPrefix(hash, "!") }

// Inventory reports the host.
func (u *Unix) Inventory(ctx context.Context) (wire.Inventory, error) {
	inv := wire.Inventory{AgentVersion: u.Version, AllowUsers: append([]string{}, u.AllowUsers...)}
	inv.HostName, _ = os.Hostname()
	inv.SSHAddress = u.AdvertiseAddr
	if inv.SSHAddress == "" {
		inv.SSHAddress = u.SSHDAddr
	}
	keys := u.hostKeyFiles(ctx)
	if len(keys) == 0 {
		keys, _ = hostKeys(ctx, u.SSHDAddr)
	}
	if len(keys) > 0 {
		u.keysMu.Lock()
		u.hostKeys = keys
		u.keysMu.Unlock()
		for _, k := range keys {
			inv.SSHHostKeys = append(inv.SSHHostKeys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
		}
	} else {
		// No sshd answering: fall back to the key files.
		files, _ := filepath.Glob("/etc/ssh/ssh_host_*_key.pub")
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				if k, _, _, _, err := ssh.ParseAuthorizedKey(b); err == nil {
					inv.SSHHostKeys = append(inv.SSHHostKeys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
				}
			}
		}
	}
	users, err := u.users()
	if err != nil {
		return inv, err
	}
	inv.LocalUsers = make([]wire.LocalUser, len(users))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4) // sshd -T per user, a few at a time
	for i, p := range users {
		inv.LocalUsers[i] = wire.LocalUser{Name: p.Name, UID: p.UID, Allowed: u.allowed(p)}
		if !inv.LocalUsers[i].Allowed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if s, err := u.settings(ctx, p.Name); err == nil {
				inv.LocalUsers[i].PasswordLogin, inv.LocalUsers[i].PubkeyLogin = s.PasswordLogin, s.PubkeyLogin
			}
		}()
	}
	wg.Wait()
	return inv, nil
}

// hostKeyFiles reads the public halves of the host keys sshd's own
// configuration names (cheaper than a handshake per key type).
func (u *Unix) hostKeyFiles(ctx context.Context) []ssh.PublicKey {
	s, err := u.sshdSettings(ctx, "root")
	if err != nil {
		return nil
	}
	var keys []ssh.PublicKey
	for _, p := range s.HostKeys {
		b, err := os.ReadFile(p + ".pub")
		if err != nil {
			continue
		}
		if k, _, _, _, err := ssh.ParseAuthorizedKey(b); err == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// settings are the user's effective sshd settings, adjusted for an account
// sshd refuses outright (UsePAM no and a locked shadow entry).
func (u *Unix) settings(ctx context.Context, user string) (sshdSettings, error) {
	s, err := u.sshdSettings(ctx, user)
	if err != nil {
		return s, err
	}
	if !s.UsePAM {
		if h, err := u.shadowHash(user); err == nil && locked(h) {
			s.PasswordLogin, s.PubkeyLogin = false, false
		}
	}
	return s, nil
}

func (u *Unix) knownHostKeys(ctx context.Context) []ssh.PublicKey {
	u.keysMu.Lock()
	keys := u.hostKeys
	u.keysMu.Unlock()
	if keys == nil {
		keys, _ = hostKeys(ctx, u.SSHDAddr)
	}
	return keys
}

func failed(cmd wire.Command, msg string) wire.Result {
	return wire.Result{CommandID: cmd.ID, Status: "failed", Error: msg, Time: time.Now().UTC()}
}

func ok(cmd wire.Command, check string) wire.Result {
	return wire.Result{CommandID: cmd.ID, Status: "ok", Check: check, Time: time.Now().UTC()}
}

// Execute carries out one command. It holds the change lock, so a drift
// scan never sees a half-applied state, and records the new state as the
// drift baseline afterwards.
func (u *Unix) Execute(ctx context.Context, cmd wire.Command, fault func(string)) wire.Result {
	u.mu.Lock()
	defer u.mu.Unlock()
	p, exists := u.lookup(cmd.User)
	if !exists {
		return failed(cmd, "user does not exist on this host")
	}
	if !u.allowed(p) {
		return failed(cmd, "user not allowed")
	}
	defer u.rebaseline(p)
	switch cmd.Op {
	case OpPasswordApply:
		return u.passwordApply(ctx, cmd, p, fault)
	case OpPasswordRestore:
		return u.passwordRestore(cmd, p)
	case OpSSHKeyApply:
		return u.sshKeyApply(ctx, cmd, p, fault)
	case OpSSHKeyCleanup:
		return u.sshKeyCleanup(cmd, p)
	case OpSSHKeyRestore:
		return u.sshKeyRestore(cmd, p)
	}
	return failed(cmd, "unknown operation")
}

// --- passwords ---

func (u *Unix) passwordApply(ctx context.Context, cmd wire.Command, p passwdEntry, fault func(string)) wire.Result {
	if strings.ContainsAny(cmd.Password, "\n\r\x00") || cmd.Password == "" {
		return failed(cmd, "the password is empty or contains a line break")
	}
	old, err := u.shadowHash(p.Name)
	if err != nil {
		return failed(cmd, "cannot read the shadow entry")
	}
	if err := u.journal.saveUndo(&undoState{RotationID: cmd.RotationID, User: p.Name, Kind: "password", ShadowHash: old, Saved: time.Now().UTC()}); err != nil {
		return failed(cmd, "cannot save the undo state")
	}
	if err := chpasswd(ctx, p.Name, cmd.Password); err != nil {
		return u.undoPassword(cmd, p, err.Error())
	}
	fault("after-apply")
	check, err := u.verifyPassword(ctx, p.Name, cmd.Password)
	if err != nil {
		return u.undoPassword(cmd, p, "verification failed: "+err.Error())
	}
	fault("after-verify")
	return ok(cmd, check)
}

// undoPassword puts the saved hash back after a failed apply.
func (u *Unix) undoPassword(cmd wire.Command, p passwdEntry, why string) wire.Result {
	if r := u.passwordRestore(cmd, p); r.Status != "ok" {
		return failed(cmd, why+"; restoring the old password also failed: "+r.Error)
	}
	return failed(cmd, why+"; the old password was restored")
}

func (u *Unix) verifyPassword(ctx context.Context, user, pw string) (string, error) {
	s, err := u.settings(ctx, user)
	if err == nil && s.PasswordLogin {
		return "ssh-login", loginCheck(ctx, u.SSHDAddr, user, u.knownHostKeys(ctx), passwordAuth(pw)...)
	}
	hash, err := u.shadowHash(user)
	if err != nil {
		return "local", errors.New("cannot read the shadow entry")
	}
	return "local", cryptVerify(ctx, pw, hash)
}

func (u *Unix) passwordRestore(cmd wire.Command, p passwdEntry) wire.Result {
	saved, err := u.journal.undo(cmd.RotationID, p.Name, "password")
	if err != nil {
		return failed(cmd, "cannot read the undo state")
	}
	if saved == nil {
		return ok(cmd, "") // nothing was applied
	}
	cur, err := u.shadowHash(p.Name)
	if err != nil {
		return failed(cmd, "cannot read the shadow entry")
	}
	if cur != saved.ShadowHash {
		if err := usermodHash(p.Name, saved.ShadowHash); err != nil {
			return failed(cmd, err.Error())
		}
		if cur, err = u.shadowHash(p.Name); err != nil || cur != saved.ShadowHash {
			return failed(cmd, "the shadow entry does not hold the old hash after usermod")
		}
	}
	return ok(cmd, "local")
}

// chpasswd sets the password with the system's own tool; the password goes
// through stdin, never the command line.
func chpasswd(ctx context.Context, user, pw string) error {
	in := []byte(user + ":" + pw + "\n")
	defer clear(in)
	cmd := exec.CommandContext(ctx, "chpasswd")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		// chpasswd's messages name the user and the tool's error, never the
		// password; keep only the first line anyway.
		return fmt.Errorf("chpasswd failed: %s", firstLine(stderr.String()))
	}
	return nil
}

// usermodHash puts back a saved shadow hash (a hash, not a secret value).
func usermodHash(user, hash string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("usermod", "-p", hash, user)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("usermod failed: %s", firstLine(stderr.String()))
	}
	return nil
}

// cryptVerify checks pw against a crypt(3) hash with the system's own
// crypt (through perl, always present on Debian), so that every scheme the
// system writes (yescrypt, SHA-512, …) is understood. The password goes
// through stdin.
func cryptVerify(ctx context.Context, pw, hash string) error {
	if hash == "" || locked(hash) || hash == "*" {
		return errors.New("the account has no usable password hash")
	}
	const script = `my $pw = <STDIN>; chomp $pw; my $h = $ARGV[0]; my $c = crypt($pw, $h); print((defined $c && $c eq $h) ? "match" : "differ");`
	in := []byte(pw + "\n")
	defer clear(in)
	cmd := exec.CommandContext(ctx, "perl", "-e", script, hash)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		return errors.New("crypt verification could not run")
	}
	if string(out) != "match" {
		return errors.New("the shadow hash does not match the new password")
	}
	return nil
}

// --- SSH keys ---

// authorizedKeysPath is the user's first AuthorizedKeysFile entry.
func (u *Unix) authorizedKeysPath(ctx context.Context, p passwdEntry) string {
	pattern := ".ssh/authorized_keys"
	if s, err := u.sshdSettings(ctx, p.Name); err == nil && s.AuthorizedKeysFile != "" && s.AuthorizedKeysFile != "none" {
		pattern = s.AuthorizedKeysFile
	}
	r := strings.NewReplacer("%%", "%", "%h", p.Home, "%u", p.Name, "%U", strconv.Itoa(p.UID))
	path := r.Replace(pattern)
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.Home, path)
	}
	return filepath.Clean(path)
}

type keysFile struct {
	path     string
	existed  bool
	content  []byte
	mode     fs.FileMode
	uid, gid int
}

// readKeys reads authorized_keys without following a symlink: a user must
// not be able to point root's writes or reads elsewhere.
func readKeys(path string, p passwdEntry) (*keysFile, error) {
	kf := &keysFile{path: path, mode: 0o600, uid: p.UID, gid: p.GID}
	if fi, err := os.Lstat(filepath.Dir(path)); err == nil && !fi.IsDir() {
		return nil, errors.New("the authorized_keys directory is not a directory")
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return kf, nil
	} else if err != nil {
		return nil, errors.New("cannot read authorized_keys")
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("authorized_keys is not a regular file")
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, errors.New("cannot read authorized_keys")
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, errors.New("cannot read authorized_keys")
	}
	kf.existed, kf.content, kf.mode = true, buf.Bytes(), fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		kf.uid, kf.gid = int(st.Uid), int(st.Gid)
	}
	return kf, nil
}

// ensureSSHDir creates the key file's directory (0700, owned by the user)
// when it is missing.
func ensureSSHDir(path string, p passwdEntry) error {
	dir := filepath.Dir(path)
	fi, err := os.Lstat(dir)
	if err == nil {
		if !fi.IsDir() {
			return errors.New("the authorized_keys directory is not a directory")
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chown(dir, p.UID, p.GID); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// keyLines splits authorized_keys into lines, marking those holding key.
func hasKey(content []byte, key ssh.PublicKey) bool {
	for line := range bytes.SplitSeq(content, []byte("\n")) {
		if k, _, _, _, err := ssh.ParseAuthorizedKey(line); err == nil && bytes.Equal(k.Marshal(), key.Marshal()) {
			return true
		}
	}
	return false
}

func removeKey(content []byte, key ssh.PublicKey) ([]byte, bool) {
	var out bytes.Buffer
	removed := false
	lines := bytes.Split(content, []byte("\n"))
	for i, line := range lines {
		if k, _, _, _, err := ssh.ParseAuthorizedKey(line); err == nil && bytes.Equal(k.Marshal(), key.Marshal()) {
			removed = true
			continue
		}
		out.Write(line)
		if i < len(lines)-1 {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), removed
}

func (u *Unix) sshKeyApply(ctx context.Context, cmd wire.Command, p passwdEntry, fault func(string)) wire.Result {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cmd.PublicKey))
	if err != nil {
		return failed(cmd, "the public key is not in authorized_keys form")
	}
	signer, err := ssh.ParsePrivateKey([]byte(cmd.PrivateKey))
	if err != nil {
		return failed(cmd, "the private key cannot be parsed")
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
		return failed(cmd, "the private key does not match the public key")
	}
	path := u.authorizedKeysPath(ctx, p)
	kf, err := readKeys(path, p)
	if err != nil {
		return failed(cmd, err.Error())
	}
	if err := u.journal.saveUndo(&undoState{RotationID: cmd.RotationID, User: p.Name, Kind: "sshkey", Path: path,
		Existed: kf.existed, Content: kf.content, Mode: kf.mode, UID: kf.uid, GID: kf.gid, Saved: time.Now().UTC()}); err != nil {
		return failed(cmd, "cannot save the undo state")
	}
	if !hasKey(kf.content, pub) {
		content := append([]byte{}, kf.content...)
		if len(content) > 0 && content[len(content)-1] != '\n' {
			content = append(content, '\n')
		}
		content = append(content, ssh.MarshalAuthorizedKey(pub)...)
		if err := ensureSSHDir(path, p); err != nil {
			return u.undoKeys(cmd, p, "cannot create the .ssh directory")
		}
		if err := writeFileAtomic(path, content, kf.mode, kf.uid, kf.gid); err != nil {
			return u.undoKeys(cmd, p, "cannot write authorized_keys")
		}
	}
	fault("after-apply")
	check, err := u.verifyKey(ctx, p, path, pub, signer)
	if err != nil {
		return u.undoKeys(cmd, p, "verification failed: "+err.Error())
	}
	fault("after-verify")
	return ok(cmd, check)
}

func (u *Unix) verifyKey(ctx context.Context, p passwdEntry, path string, pub ssh.PublicKey, signer ssh.Signer) (string, error) {
	s, err := u.settings(ctx, p.Name)
	if err == nil && s.PubkeyLogin {
		return "ssh-login", loginCheck(ctx, u.SSHDAddr, p.Name, u.knownHostKeys(ctx), ssh.PublicKeys(signer))
	}
	kf, err := readKeys(path, p)
	if err != nil {
		return "local", err
	}
	switch {
	case !kf.existed || !hasKey(kf.content, pub):
		return "local", errors.New("the key is not in authorized_keys")
	case kf.uid != p.UID:
		return "local", errors.New("authorized_keys is not owned by the user")
	case kf.mode&0o022 != 0:
		return "local", errors.New("authorized_keys is writable by group or others")
	}
	return "local", nil
}

func (u *Unix) undoKeys(cmd wire.Command, p passwdEntry, why string) wire.Result {
	if r := u.sshKeyRestore(cmd, p); r.Status != "ok" {
		return failed(cmd, why+"; restoring the old authorized_keys also failed: "+r.Error)
	}
	return failed(cmd, why+"; the old authorized_keys was restored")
}

func (u *Unix) sshKeyCleanup(cmd wire.Command, p passwdEntry) wire.Result {
	old, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cmd.PublicKey))
	if err != nil {
		return failed(cmd, "the public key is not in authorized_keys form")
	}
	path := u.authorizedKeysPath(context.Background(), p)
	kf, err := readKeys(path, p)
	if err != nil {
		return failed(cmd, err.Error())
	}
	content, removed := removeKey(kf.content, old)
	if removed {
		if err := writeFileAtomic(path, content, kf.mode, kf.uid, kf.gid); err != nil {
			return failed(cmd, "cannot write authorized_keys")
		}
	}
	return ok(cmd, "local")
}

func (u *Unix) sshKeyRestore(cmd wire.Command, p passwdEntry) wire.Result {
	saved, err := u.journal.undo(cmd.RotationID, p.Name, "sshkey")
	if err != nil {
		return failed(cmd, "cannot read the undo state")
	}
	if saved == nil {
		return ok(cmd, "")
	}
	cur, err := readKeys(saved.Path, p)
	if err != nil {
		return failed(cmd, err.Error())
	}
	switch {
	case !saved.Existed && cur.existed:
		if err := os.Remove(saved.Path); err != nil {
			return failed(cmd, "cannot remove authorized_keys")
		}
		syncDir(filepath.Dir(saved.Path))
	case saved.Existed && (!cur.existed || !bytes.Equal(cur.content, saved.Content)):
		if err := writeFileAtomic(saved.Path, saved.Content, saved.Mode, saved.UID, saved.GID); err != nil {
			return failed(cmd, "cannot write authorized_keys")
		}
	}
	return ok(cmd, "local")
}

// --- drift ---

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func (u *Unix) stateOf(p passwdEntry) userState {
	var st userState
	if h, err := u.shadowHash(p.Name); err == nil {
		st.Shadow = digest([]byte(h))
	}
	if kf, err := readKeys(u.authorizedKeysPath(context.Background(), p), p); err == nil && kf.existed {
		st.Keys = digest(kf.content)
	}
	return st
}

func (u *Unix) baselinePath() string { return filepath.Join(u.dataDir, "baseline.json") }

func (u *Unix) loadBaseline() {
	if u.baseline != nil {
		return
	}
	u.baseline = map[string]userState{}
	if b, err := os.ReadFile(u.baselinePath()); err == nil {
		json.Unmarshal(b, &u.baseline)
	}
}

func (u *Unix) saveBaseline() {
	b, _ := json.Marshal(u.baseline)
	writeFileAtomic(u.baselinePath(), b, 0o600, -1, -1)
}

// rebaseline records a user's state after Keyhold changed it.
func (u *Unix) rebaseline(p passwdEntry) {
	u.loadBaseline()
	u.baseline[p.Name] = u.stateOf(p)
	u.saveBaseline()
}

// Drift compares every allowed account with the baseline.
func (u *Unix) Drift(ctx context.Context) ([]wire.DriftEvent, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	users, err := u.users()
	if err != nil {
		return nil, err
	}
	u.loadBaseline()
	var evs []wire.DriftEvent
	now := time.Now().UTC()
	changed := false
	for _, p := range users {
		if !u.allowed(p) {
			continue
		}
		cur := u.stateOf(p)
		prev, known := u.baseline[p.Name]
		if known {
			if prev.Shadow != cur.Shadow {
				evs = append(evs, wire.DriftEvent{User: p.Name, What: "password", Time: now})
			}
			if prev.Keys != cur.Keys {
				evs = append(evs, wire.DriftEvent{User: p.Name, What: "authorized_keys", Time: now})
			}
		}
		if !known || prev != cur {
			u.baseline[p.Name] = cur
			changed = true
		}
	}
	if changed {
		u.saveBaseline()
	}
	return evs, nil
}
