package images

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/premiscale/premiscale/internal/state"
)

// presentVolumes is a host whose pool holds every image; it counts the lookups.
type presentVolumes struct{ lookups int }

func (p *presentVolumes) VolumeExists(context.Context, string, string) (bool, error) {
	p.lookups++
	return true, nil
}
func (p *presentVolumes) DeleteVolume(context.Context, string, string) (bool, error) {
	return false, errors.New("not in the fake")
}
func (p *presentVolumes) UploadVolumeFrom(context.Context, string, string, int64, io.Reader) error {
	return errors.New("not in the fake")
}
func (p *presentVolumes) DownloadVolume(context.Context, string, string, io.Writer) (int64, error) {
	return 0, errors.New("not in the fake")
}
func (p *presentVolumes) VolumeFileSize(context.Context, string, string) (int64, error) {
	return 0, errors.New("not in the fake")
}

// noRecords has no copy recorded; it counts the reads.
type noRecords struct{ reads int }

func (n *noRecords) BeginImageCopy(context.Context, string, string, string, string) error {
	return errors.New("not in the fake")
}
func (n *noRecords) FinishImageCopy(context.Context, string, string, string, string, int64) error {
	return errors.New("not in the fake")
}
func (n *noRecords) GetHostImage(context.Context, string, string, string) (state.HostImage, bool, error) {
	n.reads++
	return state.HostImage{}, false, nil
}

// An image found ready is not looked for again by the launches right after: a scale-out's
// launches do not take turns at the check.
func TestReadyImageIsNotCheckedByEveryLaunch(t *testing.T) {
	recs, vols := &noRecords{}, &presentVolumes{}
	c := &Copier{Records: recs, Logger: slog.New(slog.DiscardHandler)}
	im := Image{Pool: "images", Volume: "base.qcow2"}
	for range 10 {
		if copied, err := c.Ensure(context.Background(), "kvm1", vols, im, nil); err != nil || copied {
			t.Fatalf("Ensure = %v, %v; want the image found", copied, err)
		}
	}
	if recs.reads != 1 || vols.lookups != 1 {
		t.Errorf("10 launches read the records %d times and looked the image up %d times, want once each", recs.reads, vols.lookups)
	}
	// Another host, or another image, is checked on its own.
	if _, err := c.Ensure(context.Background(), "kvm2", vols, im, nil); err != nil || vols.lookups != 2 {
		t.Errorf("another host's image: %v, %d lookups in all; want it looked up", err, vols.lookups)
	}
}
