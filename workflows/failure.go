package workflows

import (
	"errors"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// failureReason is what people read about a failed activity — in group status, the decision
// log and MySQL: the message of the error the activity returned, which names the instance, the
// host, the step and the root cause, once ("create domain of instance web-3 on host kvm1: start
// domain web-3 on qemu:///system: unable to stat: /boot/vmlinuz: No such file or directory").
// err's own text says that again and again: Temporal wraps it ("activity error (type:
// CreateInstance, scheduledEventID: 12, …)"), and an error chain from an older worker carries
// each link as an error of its own, each printed with "(type: wrapError, retryable: true)".
func failureReason(err error) string {
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		reason := timeoutReason(timeout.TimeoutType())
		// A timeout that ended the retries carries the last attempt's failure.
		var last *temporal.ApplicationError
		if errors.As(timeout.Unwrap(), &last) {
			reason += "; the last attempt failed: " + last.Message()
		}
		return reason
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "cancelled"
	}
	return err.Error()
}

func timeoutReason(t enumspb.TimeoutType) string {
	switch t {
	case enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START:
		return "no worker serving the host took the task in time (is the host's worker running?)"
	case enumspb.TIMEOUT_TYPE_HEARTBEAT:
		return "the worker running it stopped reporting progress (it may have died)"
	case enumspb.TIMEOUT_TYPE_START_TO_CLOSE:
		return "an attempt did not finish in time"
	case enumspb.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
		return "it did not succeed within the time allowed for all attempts"
	}
	return "timed out (" + t.String() + ")"
}
