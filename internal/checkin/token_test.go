package checkin

import (
	"strings"
	"testing"
)

func TestTokenIsHMACSHA256(t *testing.T) {
	// RFC 4231, test case 2.
	const want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got := Token([]byte("Jefe"), "what do ya want for nothing?"); got != want {
		t.Errorf("Token = %s, want %s", got, want)
	}
}

func TestValidToken(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	good := Token(secret, "web-1")
	tests := []struct {
		name     string
		secret   []byte
		instance string
		token    string
		want     bool
	}{
		{"its own token", secret, "web-1", good, true},
		{"another instance's token", secret, "web-2", good, false},
		{"token under another secret", []byte("another secret, just as long....."), "web-1", good, false},
		{"upper case", secret, "web-1", strings.ToUpper(good), false},
		{"truncated", secret, "web-1", good[:len(good)-1], false},
		{"extended", secret, "web-1", good + "0", false},
		{"one digit changed", secret, "web-1", good[:10] + flip(good[10]) + good[11:], false},
		{"empty token", secret, "web-1", "", false},
		{"empty secret", nil, "web-1", Token(nil, "web-1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidToken(tt.secret, tt.instance, tt.token); got != tt.want {
				t.Errorf("ValidToken(%q, %q) = %v, want %v", tt.instance, tt.token, got, tt.want)
			}
		})
	}
}

func flip(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

func TestURL(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	tests := []struct {
		base, instance, want string
	}{
		{"http://10.0.2.2:8090", "web-1", "http://10.0.2.2:8090/checkin/web-1/" + Token(secret, "web-1")},
		{"http://10.0.2.2:8090/", "web-1", "http://10.0.2.2:8090/checkin/web-1/" + Token(secret, "web-1")},
		{"https://checkin.example.com/base//", "web-1", "https://checkin.example.com/base/checkin/web-1/" + Token(secret, "web-1")},
		{"http://h", "a b/c?d", "http://h/checkin/a%20b%2Fc%3Fd/" + Token(secret, "a b/c?d")},
	}
	for _, tt := range tests {
		if got := URL(tt.base, secret, tt.instance); got != tt.want {
			t.Errorf("URL(%q, %q) =\n %s\nwant\n %s", tt.base, tt.instance, got, tt.want)
		}
	}
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || string(a) == string(b) {
		t.Errorf("NewSecret = %x, then %x: want 32 fresh random bytes each time", a, b)
	}
}
