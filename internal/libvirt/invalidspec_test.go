package libvirt

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// TestMissingThingsAreInvalidSpecs: what a launch names that does not exist cannot appear by
// retrying, so the error says ErrInvalidSpec, with libvirt's own words.
func TestMissingThingsAreInvalidSpecs(t *testing.T) {
	c := dialTest(t, testURI)
	ctx := testCtx(t)
	name := uniqueName(t, "spec")

	_, err := c.EnsureOverlayVolume(ctx, testPool, name+".qcow2", testPool, name+"-no-base.qcow2")
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "base image "+testPool+"/"+name+"-no-base.qcow2 does not exist") {
		t.Errorf("overlay on a missing base image: %v; want ErrInvalidSpec naming the base image", err)
	}
	_, err = c.EnsureVolume(ctx, name+"-no-pool", name+".qcow2", 1<<20, "qcow2")
	if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "storage pool "+name+"-no-pool does not exist") {
		t.Errorf("volume in a missing pool: %v; want ErrInvalidSpec naming the pool", err)
	}
	if strings.Contains(fmt.Sprint(err), ErrInvalidSpec.Error()) {
		t.Errorf("the mark shows in the message: %v", err)
	}
}

func TestMissingFile(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{golibvirt.Error{Code: uint32(golibvirt.ErrSystemError), Message: "unable to stat: /boot/vmlinuz: No such file or directory"}, true},
		{fmt.Errorf("start domain x: %w", golibvirt.Error{Code: uint32(golibvirt.ErrSystemError), Message: "Cannot access storage file '/x.qcow2': No such file or directory"}), true},
		{golibvirt.Error{Code: uint32(golibvirt.ErrSystemError), Message: "Cannot access storage file '/x.qcow2': Permission denied"}, false},
		{golibvirt.Error{Code: uint32(golibvirt.ErrInternalError), Message: "No such file or directory"}, false},
		{errors.New("No such file or directory"), false},
	}
	for _, tt := range tests {
		if got := missingFile(tt.err); got != tt.want {
			t.Errorf("missingFile(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
