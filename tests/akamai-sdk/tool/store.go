package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// store is a credential store started for one run, on a free loopback port.
type store struct {
	cmd    *exec.Cmd
	tmp    string
	addr   string
	edgerc string
	ids    bootstrapIDs
	logs   *bytes.Buffer
}

// bootstrapIDs is the Akamai part of the store's bootstrap.json (no secrets in it).
type bootstrapIDs struct {
	ClientID              string `json:"clientId"`
	AccountSwitchKey      string `json:"accountSwitchKey"`
	OtherAccountSwitchKey string `json:"otherAccountSwitchKey"`
	CredentialID          int64  `json:"credentialId"`
}

const listeningPrefix = "credstore listening on "

func startStore(bin string) (*store, error) {
	tmp, err := os.MkdirTemp("", "akamai-sdk-conformance-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(tmp, "data")
	s := &store{tmp: tmp, edgerc: filepath.Join(data, "akamai.edgerc"), logs: &bytes.Buffer{}}
	s.cmd = exec.Command(bin, "credstore", "--listen", "127.0.0.1:0", "--data", data, "--admin-api")
	// Linux ends the store with this program, even when it is killed before stop() runs.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	// The store logs every request; keep it for a failed start instead of mixing it into the report.
	s.cmd.Stderr = s.logs
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, s.abandon(err)
	}
	if err := s.cmd.Start(); err != nil {
		return nil, s.abandon(fmt.Errorf("starting %s: %w", bin, err))
	}
	addr, err := firstLine(stdout)
	if err != nil {
		return nil, s.abandon(err)
	}
	s.addr = addr
	if err := s.readIDs(filepath.Join(data, "bootstrap.json")); err != nil {
		return nil, s.abandon(err)
	}
	return s, nil
}

// firstLine waits (bounded) for the `credstore listening on ADDR` line.
func firstLine(stdout interface{ Read([]byte) (int, error) }) (string, error) {
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	select {
	case line := <-lines:
		if !strings.HasPrefix(line, listeningPrefix) {
			return "", fmt.Errorf("unexpected first line from the credstore: %q", line)
		}
		return strings.TrimPrefix(line, listeningPrefix), nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("the credstore did not report its address within 30s")
	}
}

func (s *store) readIDs(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var file struct {
		Akamai bootstrapIDs `json:"akamai"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	s.ids = file.Akamai
	return nil
}

// abandon stops a store that failed to start and returns err with the store's last log line.
func (s *store) abandon(err error) error {
	s.stop()
	if logs := strings.TrimSpace(s.logs.String()); logs != "" {
		lines := strings.Split(logs, "\n")
		err = fmt.Errorf("%w (credstore: %s)", err, lines[len(lines)-1])
	}
	return err
}

func (s *store) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-done
		}
	}
	_ = os.RemoveAll(s.tmp)
}
