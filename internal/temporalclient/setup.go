package temporalclient

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/durationpb"
)

// SetupOptions say what Setup prepares.
type SetupOptions struct {
	Namespace string
	// CreateNamespace registers the namespace, with Retention, when it does not exist.
	CreateNamespace bool
	Retention       time.Duration
	// Attributes are the search attributes to register (spec.SearchAttributes).
	Attributes []temporal.SearchAttributeKey
	// Wait bounds how long Setup waits for a new namespace or attribute to become visible.
	Wait time.Duration
}

// SetupResult says what Setup found and did.
type SetupResult struct {
	Namespace        string            `json:"namespace"`
	NamespaceCreated bool              `json:"namespaceCreated"`
	Attributes       []AttributeResult `json:"searchAttributes"`
}

// AttributeResult is one search attribute: its type, and whether Setup added it (false: it
// was there already).
type AttributeResult struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Added bool   `json:"added"`
}

// Setup prepares a namespace for PremiScale: it creates the namespace if asked and needed, and
// registers the search attributes that are missing. Running it again changes nothing. An
// attribute registered with another type is an error, since the workflows could not set it.
func Setup(ctx context.Context, c client.Client, o SetupOptions) (SetupResult, error) {
	if o.Wait <= 0 {
		o.Wait = time.Minute
	}
	res := SetupResult{Namespace: o.Namespace}
	_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: o.Namespace})
	var notFound *serviceerror.NamespaceNotFound
	switch {
	case errors.As(err, &notFound) && o.CreateNamespace:
		_, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
			Namespace:                        o.Namespace,
			Description:                      "PremiScale autoscaling groups",
			WorkflowExecutionRetentionPeriod: durationpb.New(o.Retention),
		})
		var exists *serviceerror.NamespaceAlreadyExists
		if err != nil && !errors.As(err, &exists) {
			return res, fmt.Errorf("create namespace %s: %w", o.Namespace, err)
		}
		res.NamespaceCreated = err == nil
	case errors.As(err, &notFound):
		return res, fmt.Errorf("namespace %s does not exist: create it with --create-namespace (or `temporal operator namespace create`)", o.Namespace)
	case err != nil:
		return res, fmt.Errorf("describe namespace %s: %w", o.Namespace, err)
	}

	// A namespace just created takes a moment to reach every part of the server.
	var have map[string]enums.IndexedValueType
	err = retryFor(ctx, o.Wait, func() error {
		var err error
		have, err = listAttributes(ctx, c, o.Namespace)
		return err
	})
	if err != nil {
		return res, err
	}
	missing := map[string]enums.IndexedValueType{}
	var wrong []string
	for _, a := range o.Attributes {
		name, want := a.GetName(), a.GetValueType()
		got, ok := have[name]
		switch {
		case !ok:
			missing[name] = want
		case got != want:
			wrong = append(wrong, fmt.Sprintf("%s is registered as %s but must be %s", name, got, want))
		}
		res.Attributes = append(res.Attributes, AttributeResult{Name: name, Type: want.String(), Added: !ok})
	}
	if len(wrong) > 0 {
		return res, fmt.Errorf("namespace %s: search attribute %s (remove it with `temporal operator search-attribute remove --namespace %s --name NAME`, then run setup again)",
			o.Namespace, strings.Join(wrong, "; "), o.Namespace)
	}
	if len(missing) == 0 {
		return res, nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: o.Namespace, SearchAttributes: missing})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return res, fmt.Errorf("namespace %s: add search attributes %s: %w", o.Namespace, strings.Join(slices.Sorted(maps.Keys(missing)), ", "), err)
	}
	// Another setup may have added them a moment ago (AlreadyExists); either way, check the
	// types now registered.
	err = retryFor(ctx, o.Wait, func() error {
		have, err := listAttributes(ctx, c, o.Namespace)
		if err != nil {
			return err
		}
		for name, want := range missing {
			if got, ok := have[name]; !ok {
				return fmt.Errorf("search attribute %s is not listed yet", name)
			} else if got != want {
				return permanent{fmt.Errorf("namespace %s: search attribute %s was registered as %s meanwhile, but must be %s", o.Namespace, name, got, want)}
			}
		}
		return nil
	})
	return res, err
}

func listAttributes(ctx context.Context, c client.Client, namespace string) (map[string]enums.IndexedValueType, error) {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list the search attributes of namespace %s: %w", namespace, err)
	}
	return resp.GetCustomAttributes(), nil
}

// permanent marks an error that waiting does not cure.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// retryFor calls f until it succeeds, returns a permanent error, or wait has passed; it
// returns f's last error.
func retryFor(ctx context.Context, wait time.Duration, f func() error) error {
	deadline := time.Now().Add(wait)
	for {
		err := f()
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// CheckAttributes reports what keeps attrs from being set on the namespace's workflows: each
// attribute missing or registered with another type, in one error that says how to fix it. A
// worker checks this at start, since a workflow that sets an unregistered attribute fails its
// workflow task again and again. ErrCannotCheck wraps a failure to list the attributes (an API
// key without the right to).
func CheckAttributes(ctx context.Context, c client.Client, namespace string, attrs []temporal.SearchAttributeKey) error {
	have, err := listAttributes(ctx, c, namespace)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCannotCheck, err)
	}
	var missing, wrong []string
	for _, a := range attrs {
		name, want := a.GetName(), a.GetValueType()
		switch got, ok := have[name]; {
		case !ok:
			missing = append(missing, fmt.Sprintf("%s (%s)", name, want))
		case got != want:
			wrong = append(wrong, fmt.Sprintf("%s is %s, must be %s", name, got, want))
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "lacks the search attributes "+strings.Join(missing, ", "))
	}
	if len(wrong) > 0 {
		problems = append(problems, "has search attributes of the wrong type: "+strings.Join(wrong, "; "))
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("namespace %s %s: run `premiscale temporal setup` (it adds what is missing; an attribute of the wrong type must be removed first)",
		namespace, strings.Join(problems, " and "))
}

// ErrCannotCheck: the namespace's search attributes could not be listed.
var ErrCannotCheck = errors.New("cannot list the search attributes")
