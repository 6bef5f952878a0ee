package worker

import (
	"testing"
	"time"
)

func TestBackoffDoublesUpToTheCapWithJitter(t *testing.T) {
	b := backoff{initial: time.Second, max: 30 * time.Second}
	for _, tc := range []struct {
		attempt int
		// ceiling is the un-jittered delay; a delay lies in [ceiling/2, ceiling].
		ceiling time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{5, 16 * time.Second},
		{6, 30 * time.Second},
		{7, 30 * time.Second},
		{1000, 30 * time.Second},
	} {
		for _, r := range []float64{0, 0.5, 0.999999} {
			b.rand = func() float64 { return r }
			got := b.delay(tc.attempt)
			if got < tc.ceiling/2 || got > tc.ceiling {
				t.Errorf("attempt %d, jitter %v: delay %s, want within [%s, %s]", tc.attempt, r, got, tc.ceiling/2, tc.ceiling)
			}
		}
		b.rand = func() float64 { return 0 }
		if got := b.delay(tc.attempt); got != tc.ceiling/2 {
			t.Errorf("attempt %d without jitter: %s, want %s", tc.attempt, got, tc.ceiling/2)
		}
	}
}

func TestBackoffJitterSpreadsRetries(t *testing.T) {
	b := backoff{initial: time.Second, max: 30 * time.Second}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[b.delay(4)] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 delays for one attempt took only %d values: %v", len(seen), seen)
	}
}
