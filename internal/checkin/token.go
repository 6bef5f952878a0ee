// Package checkin is the HTTP endpoint new VMs call when they are up. cloud-init's phone_home
// POSTs to <checkin.url>/checkin/<instance>/<token> once the guest has booted; a systemd timer
// in the guest then POSTs a heartbeat to the same URL. The first check-in is passed to the
// instance's workflow as a signal; later ones only move the instance's last-seen time.
//
// The token in the URL is an HMAC of the instance name under a secret shared by every worker, so
// no per-instance token is stored and any worker can check any instance's token.
package checkin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
)

// SecretSetting is the name the generated secret is shared under in the state database
// (state.Store.Secret), when checkin.secret is not configured.
const SecretSetting = "checkin-secret"

// NewSecret returns a fresh random secret; it is the generate function for state.Store.Secret.
func NewSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// Token is the check-in token of an instance: hex HMAC-SHA256 of its name under secret.
func Token(secret []byte, instance string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(instance))
	return hex.EncodeToString(m.Sum(nil))
}

// ValidToken says whether token is the instance's check-in token, taking the same time whatever
// the token's content. An empty secret validates nothing.
func ValidToken(secret []byte, instance, token string) bool {
	if len(secret) == 0 {
		return false
	}
	return hmac.Equal([]byte(Token(secret, instance)), []byte(token))
}

// URL is the address an instance's guest POSTs its check-ins to; base is checkin.url, with or
// without a trailing slash.
func URL(base string, secret []byte, instance string) string {
	return strings.TrimRight(base, "/") + "/checkin/" + url.PathEscape(instance) + "/" + Token(secret, instance)
}
