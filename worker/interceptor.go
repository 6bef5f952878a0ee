package worker

import (
	"context"
	"errors"
	"reflect"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/outage"
)

// activityErrors shapes the errors activities return before they cross Temporal (see
// activityError).
type activityErrors struct {
	interceptor.WorkerInterceptorBase
}

func (*activityErrors) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &shapeActivityErrors{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}}
}

type shapeActivityErrors struct {
	interceptor.ActivityInboundInterceptorBase
}

func (s *shapeActivityErrors) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	res, err := s.Next.ExecuteActivity(ctx, in)
	return res, activityError(err)
}

// activityError is what a failed activity tells Temporal: one application error whose message
// is the error's own — which already says, once, the instance, the host, the step and the root
// cause ("create domain of instance web-3 on host kvm1: start domain web-3 on qemu:///system:
// unable to stat: /boot/vmlinuz: No such file or directory").
//
// Left to itself, the SDK turns each link of a Go error chain into an application error of its
// own, and their messages, each containing the next, print as the same chain over and over with
// "(type: wrapError, retryable: true)" between. An error that says a dependency could not be
// reached becomes outage.ErrTypeUnreachable (benign: its attempts are logged at debug level; the
// worker's watch logs the outage once). Temporal's own errors (application errors the activity
// made, such as a non-retryable BadLaunchSpec; cancellation) pass as they are.
func activityError(err error) error {
	var (
		app      *temporal.ApplicationError
		canceled *temporal.CanceledError
	)
	switch {
	case err == nil, errors.As(err, &app), errors.As(err, &canceled),
		errors.Is(err, context.Canceled), errors.Is(err, activity.ErrResultPending):
		return err
	case outage.IsUnreachable(err):
		return outage.MarkUnreachable(err)
	}
	return temporal.NewApplicationError(err.Error(), rootType(err))
}

// rootType names the type of the innermost error of err's chain, as Go prints it
// ("libvirt.Error", "mysql.MySQLError"): the kind of failure, where the SDK would name the
// outermost wrapper ("wrapError").
func rootType(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	return strings.TrimPrefix(reflect.TypeOf(err).String(), "*")
}
