package platform

import (
	"testing"
	"time"
)

func TestBackoffGrowsWithJitterUpToTheCap(t *testing.T) {
	b := newBackoff(100*time.Millisecond, 2*time.Second)
	ceilings := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000, 2000}
	for i, c := range ceilings {
		ceiling := c * time.Millisecond
		d := b.next()
		if d < ceiling/2 || d > ceiling {
			t.Errorf("wait %d = %s, want within [%s, %s]", i, d, ceiling/2, ceiling)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: %s", d)
	}
	// Jitter: many draws of one step are not all the same.
	seen := map[time.Duration]bool{}
	for range 20 {
		b.reset()
		seen[b.next()] = true
	}
	if len(seen) < 5 {
		t.Errorf("20 draws gave only %d distinct waits", len(seen))
	}
}

func TestRateLimitWait(t *testing.T) {
	for h, want := range map[string]time.Duration{
		"1500": 1500 * time.Millisecond, " 250 ": 250 * time.Millisecond, "0.5": 500 * time.Microsecond,
		"": 0, "soon": 0, "-3": 0, "99999999999": maxRateLimitWait,
	} {
		if got := rateLimitWait(h); got != want {
			t.Errorf("rateLimitWait(%q) = %s, want %s", h, got, want)
		}
	}
}
