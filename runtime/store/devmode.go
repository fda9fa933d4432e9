package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/store/auth"
)

// DevCredentials are the throwaway credentials of development mode, kept
// 0600 in DIR/credentials.json so that they survive restarts.
type DevCredentials struct {
	User        string `json:"user"`
	Password    string `json:"password"`
	AdminSecret string `json:"admin_secret"`
}

// DevDomain is the mail domain of development mode.
const DevDomain = "mailfleet.test"

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DevConfig prepares DIR for development mode (once) and returns the config
// of an instance on 127.0.0.1 with free ports, and its credentials.
func DevConfig(dir string) (*config.Store, DevCredentials, error) {
	var cred DevCredentials
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, cred, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, cred, fmt.Errorf("store: %w", err)
	}
	credPath := filepath.Join(dir, "credentials.json")
	passwd := filepath.Join(dir, "passwd")
	secretPath := filepath.Join(dir, "admin-secret")
	b, err := os.ReadFile(credPath)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &cred); err != nil || cred.User == "" || cred.Password == "" || cred.AdminSecret == "" {
			return nil, cred, fmt.Errorf("store: %s is damaged; remove it to start afresh", credPath)
		}
	case errors.Is(err, os.ErrNotExist):
		cred = DevCredentials{User: "dev@" + DevDomain, Password: randomToken(12), AdminSecret: randomToken(24)}
		os.Remove(passwd)
		if err := auth.AppendPasswdEntry(passwd, cred.User, cred.Password); err != nil {
			return nil, cred, err
		}
		if err := os.WriteFile(secretPath, []byte(cred.AdminSecret+"\n"), 0o600); err != nil {
			return nil, cred, fmt.Errorf("store: %w", err)
		}
		b, _ := json.MarshalIndent(cred, "", "  ")
		// Written last: its presence means the other files are complete.
		tmp := credPath + ".tmp"
		if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
			return nil, cred, fmt.Errorf("store: %w", err)
		}
		if err := os.Rename(tmp, credPath); err != nil {
			return nil, cred, fmt.Errorf("store: %w", err)
		}
	default:
		return nil, cred, fmt.Errorf("store: %w", err)
	}
	cfg := &config.Store{
		FormatVersion: config.FormatVersion,
		Instance:      "dev",
		Hostname:      "localhost",
		Listeners: map[string]string{"smtp": "127.0.0.1:0", "lmtp": "127.0.0.1:0", "imap": "127.0.0.1:0",
			"pop3": "127.0.0.1:0", "admin": "127.0.0.1:0"},
		StoragePath:     filepath.Join(dir, "storage"),
		QueuePath:       filepath.Join(dir, "queue"),
		RunPath:         filepath.Join(dir, "run"),
		LogDir:          filepath.Join(dir, "log"),
		LogName:         "dev",
		AdminSecretFile: secretPath,
		PasswdFile:      passwd,
		Domains:         []string{DevDomain},
	}
	if err := cfg.Validate(); err != nil {
		return nil, cred, err
	}
	return cfg, cred, nil
}
