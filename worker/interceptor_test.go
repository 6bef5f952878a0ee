package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/outage"
)

func TestActivityErrorCrossesTemporalOnce(t *testing.T) {
	root := golibvirt.Error{Code: uint32(golibvirt.ErrInternalError), Message: "internal error: qemu unexpectedly closed the monitor"}
	chain := fmt.Errorf("create domain of instance web-3 on host kvm1: %w",
		fmt.Errorf("start domain web-3 on qemu:///system: %w", root))
	converter := temporal.GetDefaultFailureConverter()

	// What the SDK would make of the chain by itself: a cause per link, each repeating the rest.
	if f := converter.ErrorToFailure(chain); f.GetCause() == nil {
		t.Fatalf("the SDK no longer nests a Go error chain (%v): the interceptor may not be needed", f)
	}

	err := activityError(chain)
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || app.Message() != chain.Error() || app.Type() != "libvirt.Error" || app.NonRetryable() {
		t.Fatalf("activityError = %#v; want a retryable application error of type libvirt.Error with the chain's message", err)
	}
	f := converter.ErrorToFailure(err)
	if f.GetCause() != nil || f.GetMessage() != chain.Error() {
		t.Errorf("failure sent to Temporal: message %q, cause %v; want the message once and no cause", f.GetMessage(), f.GetCause())
	}
	if n := strings.Count(converter.FailureToError(f).Error(), root.Message); n != 1 {
		t.Errorf("the root cause appears %d times in %q", n, converter.FailureToError(f))
	}

	refused := fmt.Errorf("record instance web-3: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")})
	if !errors.As(activityError(refused), &app) || app.Type() != outage.ErrTypeUnreachable {
		t.Errorf("an unreachable dependency's error became %v; want type %s", activityError(refused), outage.ErrTypeUnreachable)
	}

	bad := temporal.NewNonRetryableApplicationError("base image images/x.qcow2 does not exist", activities.ErrTypeBadLaunchSpec, nil)
	cancelled := fmt.Errorf("create disk: %w", context.Canceled)
	for _, e := range []error{nil, bad, cancelled} {
		if got := activityError(e); got != e {
			t.Errorf("activityError(%v) = %v, want it unchanged", e, got)
		}
	}
}
