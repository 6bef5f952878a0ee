package temporalclient

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/testservices"
)

// devClient dials the dev server's namespace.
func devClient(t *testing.T, namespace string) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, config.Temporal{Address: testservices.TemporalAddress(t), Namespace: namespace}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newNamespaceName returns a namespace name unique to the test, deleted when the test ends.
func newNamespaceName(t *testing.T, c client.Client) string {
	t.Helper()
	ns := testservices.UniqueName(t, "ns")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Absent when the test never created it.
		_, _ = c.OperatorService().DeleteNamespace(ctx, &operatorservice.DeleteNamespaceRequest{Namespace: ns})
	})
	return ns
}

func TestSetupCreatesANamespaceOnceAndRegistersOnce(t *testing.T) {
	c := devClient(t, "default")
	ns := newNamespaceName(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := SetupOptions{Namespace: ns, CreateNamespace: true, Retention: 24 * time.Hour, Attributes: spec.SearchAttributes}

	first, err := Setup(ctx, c, o)
	if err != nil {
		t.Fatalf("first setup: %v", err)
	}
	if !first.NamespaceCreated || len(first.Attributes) != len(spec.SearchAttributes) {
		t.Fatalf("first setup: %+v, want the namespace created and %d attributes", first, len(spec.SearchAttributes))
	}
	for _, a := range first.Attributes {
		if !a.Added {
			t.Errorf("first setup did not add %s", a.Name)
		}
	}
	have, err := listAttributes(ctx, c, ns)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range spec.SearchAttributes {
		if have[a.GetName()] != a.GetValueType() {
			t.Errorf("namespace %s lists %s as %s, want %s", ns, a.GetName(), have[a.GetName()], a.GetValueType())
		}
	}

	second, err := Setup(ctx, c, o)
	if err != nil {
		t.Fatalf("second setup: %v", err)
	}
	if second.NamespaceCreated {
		t.Error("second setup created the namespace again")
	}
	for _, a := range second.Attributes {
		if a.Added {
			t.Errorf("second setup added %s again", a.Name)
		}
	}
}

func TestSetupRefusesAWrongType(t *testing.T) {
	c := devClient(t, "default")
	ns := newNamespaceName(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := Setup(ctx, c, SetupOptions{Namespace: ns, CreateNamespace: true, Retention: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	_, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: map[string]enums.IndexedValueType{spec.AttrDesired.GetName(): enums.INDEXED_VALUE_TYPE_KEYWORD},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Setup(ctx, c, SetupOptions{Namespace: ns, Attributes: spec.SearchAttributes})
	want := "namespace " + ns + ": search attribute PremiscaleDesired is registered as Keyword but must be Int"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("setup over a wrong type: %v, want an error saying %q", err, want)
	}
}

func TestSetupWithoutTheNamespace(t *testing.T) {
	c := devClient(t, "default")
	ns := newNamespaceName(t, c)
	_, err := Setup(context.Background(), c, SetupOptions{Namespace: ns, Attributes: spec.SearchAttributes})
	want := "namespace " + ns + " does not exist: create it with --create-namespace"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("setup of a missing namespace: %v, want %q", err, want)
	}
}

func TestCheckAttributesSaysWhatIsMissingAndHowToFixIt(t *testing.T) {
	c := devClient(t, "default")
	ns := newNamespaceName(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The namespace alone, without PremiScale's attributes.
	if _, err := Setup(ctx, c, SetupOptions{Namespace: ns, CreateNamespace: true, Retention: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	err := CheckAttributes(ctx, c, ns, spec.SearchAttributes)
	if err == nil {
		t.Fatal("no error for a namespace without PremiScale's search attributes")
	}
	for _, want := range []string{"namespace " + ns + " lacks the search attributes", "PremiscaleGroup (Keyword)", "PremiscaleDesired (Int)", "PremiscaleHost (Keyword)", "run `premiscale temporal setup`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if errors.Is(err, ErrCannotCheck) {
		t.Errorf("a namespace that lacks attributes counts as one that cannot be checked: %v", err)
	}

	if _, err := Setup(ctx, c, SetupOptions{Namespace: ns, Attributes: spec.SearchAttributes}); err != nil {
		t.Fatal(err)
	}
	if err := CheckAttributes(ctx, c, ns, spec.SearchAttributes); err != nil {
		t.Errorf("after setup: %v", err)
	}

	// A type that differs from what the workflows set is named too.
	wrong := []temporal.SearchAttributeKey{temporal.NewSearchAttributeKeyInt64(spec.AttrHost.GetName())}
	err = CheckAttributes(ctx, c, ns, wrong)
	if want := "PremiscaleHost is Keyword, must be Int"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("check of a wrong type: %v, want %q", err, want)
	}
}

func TestCheckAttributesOfAMissingNamespaceCannotCheck(t *testing.T) {
	c := devClient(t, "default")
	ns := newNamespaceName(t, c)
	err := CheckAttributes(context.Background(), c, ns, spec.SearchAttributes)
	if !errors.Is(err, ErrCannotCheck) {
		t.Errorf("check of a namespace that does not exist: %v, want ErrCannotCheck", err)
	}
}
