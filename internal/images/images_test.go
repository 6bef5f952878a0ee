package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/state"
	"github.com/premiscale/premiscale/internal/testservices"
)

// tempPool makes a transient directory pool on qemu:///system for one test.
func tempPool(t *testing.T) string {
	t.Helper()
	name := testservices.UniqueName(t, "pool")
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("virsh", "-c", "qemu:///system", "pool-create-as", name, "dir", "--target", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("create pool %s: %v\n%s (run testenv/up)", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("virsh", "-c", "qemu:///system", "pool-destroy", name).Run() })
	return name
}

// countingTarget counts the uploads made through it.
type countingTarget struct {
	Volumes
	uploads atomic.Int32
}

func (c *countingTarget) UploadVolumeFrom(ctx context.Context, pool, name string, size int64, r io.Reader) error {
	c.uploads.Add(1)
	return c.Volumes.UploadVolumeFrom(ctx, pool, name, size, r)
}

// poolAlias shows another pool of the same libvirtd under the image's pool name: a second
// "host" for a streamed host-to-host copy on one machine.
type poolAlias struct {
	*libvirt.Conn
	as, real string
}

func (p poolAlias) pool(name string) string {
	if name == p.as {
		return p.real
	}
	return name
}
func (p poolAlias) VolumeExists(ctx context.Context, pool, name string) (bool, error) {
	return p.Conn.VolumeExists(ctx, p.pool(pool), name)
}
func (p poolAlias) VolumeFileSize(ctx context.Context, pool, name string) (int64, error) {
	return p.Conn.VolumeFileSize(ctx, p.pool(pool), name)
}
func (p poolAlias) DownloadVolume(ctx context.Context, pool, name string, w io.Writer) (int64, error) {
	return p.Conn.DownloadVolume(ctx, p.pool(pool), name, w)
}
func (p poolAlias) DeleteVolume(ctx context.Context, pool, name string) (bool, error) {
	return p.Conn.DeleteVolume(ctx, p.pool(pool), name)
}
func (p poolAlias) UploadVolumeFrom(ctx context.Context, pool, name string, size int64, r io.Reader) error {
	return p.Conn.UploadVolumeFrom(ctx, p.pool(pool), name, size, r)
}
func (p poolAlias) Close() error { return nil }

func TestCopyBaseImages(t *testing.T) {
	ctx := context.Background()
	store, err := state.Open(ctx, testservices.MySQL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	conn, err := libvirt.Dial(ctx, "qemu:///system", libvirt.Options{CallTimeout: time.Minute})
	if err != nil {
		t.Fatalf("connect to qemu:///system: %v (run testenv/up)", err)
	}
	defer conn.Close()
	pool := tempPool(t)

	// A real qcow2 image of a few MiB of data.
	src := filepath.Join(t.TempDir(), "base.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", src, "64M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(data)
	sum := hex.EncodeToString(digest[:])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "base.qcow2", time.Now(), bytes.NewReader(data))
	}))
	defer srv.Close()

	target := &countingTarget{Volumes: conn}
	c := &Copier{Records: store, Logger: slog.New(slog.DiscardHandler), HTTP: srv.Client()}
	host := testservices.UniqueName(t, "h")

	t.Run("from a local file, once", func(t *testing.T) {
		im := Image{Pool: pool, Volume: "local.qcow2", Source: src, SHA256: strings.ToUpper(sum)}
		for i, want := range []bool{true, false} {
			copied, err := c.Ensure(ctx, host, target, im, nil)
			if err != nil || copied != want {
				t.Fatalf("Ensure #%d = %v, %v; want copied=%v", i+1, copied, err, want)
			}
		}
		rec, ok, err := store.GetHostImage(ctx, host, pool, "local.qcow2")
		if err != nil || !ok || rec.State != state.ImageReady || rec.SHA256 != sum || rec.Bytes != int64(len(data)) {
			t.Errorf("record = %+v, %v, %v", rec, ok, err)
		}
		if n, err := conn.VolumeFileSize(ctx, pool, "local.qcow2"); err != nil || n != int64(len(data)) {
			t.Errorf("volume size %d, %v; want %d", n, err, len(data))
		}
	})

	t.Run("from a URL, concurrent launches wait for one copy", func(t *testing.T) {
		im := Image{Pool: pool, Volume: "url.qcow2", Source: srv.URL + "/base.qcow2", SHA256: sum}
		before := target.uploads.Load()
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); _, errs[i] = c.Ensure(ctx, host, target, im, nil) }()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if n := target.uploads.Load() - before; n != 1 {
			t.Errorf("%d uploads for 4 concurrent launches, want 1", n)
		}
	})

	t.Run("a wrong checksum leaves nothing taken for good", func(t *testing.T) {
		bad := Image{Pool: pool, Volume: "checked.qcow2", Source: src, SHA256: strings.Repeat("0", 64)}
		_, err := c.Ensure(ctx, host, target, bad, nil)
		if err == nil || !strings.Contains(err.Error(), "has SHA-256 "+sum) || !strings.Contains(err.Error(), "copy was removed") {
			t.Fatalf("Ensure with a wrong sha256: %v", err)
		}
		if ok, _ := conn.VolumeExists(ctx, pool, "checked.qcow2"); ok {
			t.Error("the copy with the wrong checksum was left in the pool")
		}
		good := bad
		good.SHA256 = sum
		if copied, err := c.Ensure(ctx, host, target, good, nil); err != nil || !copied {
			t.Errorf("Ensure after the fix = %v, %v", copied, err)
		}
	})

	t.Run("an interrupted copy is copied again", func(t *testing.T) {
		im := Image{Pool: pool, Volume: "partial.qcow2", Source: src, SHA256: sum}
		if err := store.BeginImageCopy(ctx, host, pool, "partial.qcow2", src); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.EnsureVolume(ctx, pool, "partial.qcow2", 4096, "raw"); err != nil {
			t.Fatal(err)
		}
		copied, err := c.Ensure(ctx, host, target, im, nil)
		if err != nil || !copied {
			t.Fatalf("Ensure over a partial copy = %v, %v; want a fresh copy", copied, err)
		}
		if n, _ := conn.VolumeFileSize(ctx, pool, "partial.qcow2"); n != int64(len(data)) {
			t.Errorf("volume has %d bytes, want %d", n, len(data))
		}
	})

	t.Run("from another host that has it, streamed through libvirt", func(t *testing.T) {
		// The peer sees pool "shared" as the pool that got "local.qcow2" above; the target
		// host sees it as an empty pool.
		other := tempPool(t)
		fromPeer := &Copier{Records: store, Logger: slog.New(slog.DiscardHandler),
			Peers: []Peer{{Name: "peer", Dial: func(context.Context) (PeerConn, error) { return poolAlias{Conn: conn, as: "shared", real: pool}, nil }}}}
		target := poolAlias{Conn: conn, as: "shared", real: other}
		var progress []int64
		copied, err := fromPeer.Ensure(ctx, host+"-2", target, Image{Pool: "shared", Volume: "local.qcow2"}, func(n int64) { progress = append(progress, n) })
		if err != nil || !copied {
			t.Fatalf("copy from a peer = %v, %v", copied, err)
		}
		if n, _ := conn.VolumeFileSize(ctx, other, "local.qcow2"); n != int64(len(data)) {
			t.Errorf("the target's copy has %d bytes, want %d", n, len(data))
		}
		rec, _, _ := store.GetHostImage(ctx, host+"-2", "shared", "local.qcow2")
		if rec.State != state.ImageReady || rec.SHA256 != sum || rec.Source != "host peer" {
			t.Errorf("record of the peer copy = %+v; want ready with the source's SHA-256", rec)
		}
	})

	t.Run("no source and no host has it", func(t *testing.T) {
		_, err := c.Ensure(ctx, host, target, Image{Pool: pool, Volume: "nowhere.qcow2"}, nil)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no image.source is set") {
			t.Errorf("Ensure of an image nowhere = %v; want ErrUnavailable", err)
		}
	})
	t.Run("an image found good is found again while MySQL is away", func(t *testing.T) {
		im := Image{Pool: pool, Volume: "local.qcow2", Source: src, SHA256: sum}
		away := &Copier{Records: store, Logger: slog.New(slog.DiscardHandler)}
		if _, err := away.Ensure(ctx, host, target, im, nil); err != nil {
			t.Fatal(err)
		}
		away.Records = unreachableRecords{}
		if copied, err := away.Ensure(ctx, host, target, im, nil); err != nil || copied {
			t.Errorf("Ensure with MySQL away, of an image this copier found good = %v, %v; want found", copied, err)
		}
		fresh := &Copier{Records: unreachableRecords{}, Logger: slog.New(slog.DiscardHandler)}
		if _, err := fresh.Ensure(ctx, host, target, im, nil); err == nil {
			t.Errorf("Ensure with MySQL away, by a copier that never saw the image, succeeded; it cannot know a copy was not cut short")
		}
	})
}

// unreachableRecords is a state database that does not answer.
type unreachableRecords struct{}

var errAway = errors.New("dial tcp 127.0.0.1:3306: connect: connection refused")

func (unreachableRecords) BeginImageCopy(context.Context, string, string, string, string) error {
	return errAway
}

func (unreachableRecords) FinishImageCopy(context.Context, string, string, string, string, int64) error {
	return errAway
}

func (unreachableRecords) GetHostImage(context.Context, string, string, string) (state.HostImage, bool, error) {
	return state.HostImage{}, false, errAway
}
