package influxdb

import (
	"strings"
	"testing"
	"time"
)

func TestRenderQuery(t *testing.T) {
	tests := []struct {
		window time.Duration
		want   string
	}{
		{5 * time.Minute, `range(start: -5m) web`},
		{90 * time.Minute, `range(start: -1h30m) web`},
		{1500 * time.Millisecond, `range(start: -1s500ms) web`},
		{0, `range(start: -0s) web`},
	}
	for _, tt := range tests {
		got, err := RenderQuery("range(start: -{{.Window}}) {{.Group}}", "web", tt.window)
		if err != nil || got != tt.want {
			t.Errorf("RenderQuery(%s) = %q, %v; want %q", tt.window, got, err, tt.want)
		}
	}
	if _, err := RenderQuery("{{.Nope}}", "web", time.Minute); err == nil || !strings.Contains(err.Error(), `map has no entry for key "Nope"`) {
		t.Errorf("missing key: %v", err)
	}
}
