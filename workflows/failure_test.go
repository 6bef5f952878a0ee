package workflows

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// crossed is err as a workflow sees it after the SDK carried it from the activity.
func crossed(err error) error {
	c := temporal.GetDefaultFailureConverter()
	return fmt.Errorf("activity error (type: CreateInstance, scheduledEventID: 12, startedEventID: 13, identity: 1@kvm1@): %w",
		c.FailureToError(c.ErrorToFailure(err)))
}

func TestFailureReasonNamesTheRootCauseOnce(t *testing.T) {
	root := golibvirt.Error{Code: 38, Message: "unable to stat: /boot/vmlinuz: No such file or directory"}
	chain := fmt.Errorf("create domain of instance web-3 on host kvm1: %w", fmt.Errorf("start domain web-3 on qemu:///system: %w", root))
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a Go error chain, as an older worker sends it", crossed(chain), chain.Error()},
		{"one application error, as the worker sends it", crossed(temporal.NewApplicationError(chain.Error(), "libvirt.Error")), chain.Error()},
		{"non-retryable", crossed(temporal.NewNonRetryableApplicationError("base image images/x.qcow2 does not exist on qemu:///system", "BadLaunchSpec", nil)),
			"base image images/x.qcow2 does not exist on qemu:///system"},
		{"no worker for the host", crossed(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)),
			"no worker serving the host took the task in time (is the host's worker running?)"},
		{"timed out after failed attempts", crossed(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, temporal.NewApplicationError("connection refused", "DependencyUnreachable"))),
			"it did not succeed within the time allowed for all attempts; the last attempt failed: connection refused"},
		{"cancelled", crossed(temporal.NewCanceledError()), "cancelled"},
		{"anything else", errors.New("boom"), "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := failureReason(tt.err)
			if got != tt.want {
				t.Errorf("failureReason = %q, want %q\n(the error: %v)", got, tt.want, tt.err)
			}
			if strings.Contains(got, "(type:") || strings.Count(got, "No such file") > 1 {
				t.Errorf("failureReason = %q repeats Temporal's wrapping", got)
			}
		})
	}
}
