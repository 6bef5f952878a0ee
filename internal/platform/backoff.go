package platform

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is a capped exponential back-off with jitter: the n-th wait is drawn from
// [d/2, d] with d = min·2ⁿ up to max, so agents that lost the platform together do not all
// come back at the same moment.
type backoff struct {
	min, max time.Duration
	n        int
}

func newBackoff(lo, hi time.Duration) *backoff { return &backoff{min: lo, max: hi} }

// next returns the next wait.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	b.n++
	half := d / 2
	return half + rand.N(d-half+1)
}

// reset starts again from the shortest wait.
func (b *backoff) reset() { b.n = 0 }

// sleep waits d or until ctx ends, and says whether it waited the whole time.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
