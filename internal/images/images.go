// Package images brings a group's base image onto a host whose storage pool lacks it, before
// the first launch there: from the group's image source (a local path or an http(s) URL, checked
// against its SHA-256) or, without a source, from another host that has it (a libvirt download
// streamed into a libvirt upload). A copy is recorded in the state database before its volume is
// made and marked ready only once verified, so a volume an interrupted copy left is never taken
// for a good one: it is removed and copied again.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/premiscale/premiscale/internal/libvirt"
	"github.com/premiscale/premiscale/internal/state"
)

// Records keeps the copies; *state.Store implements it.
type Records interface {
	BeginImageCopy(ctx context.Context, host, pool, volume, source string) error
	FinishImageCopy(ctx context.Context, host, pool, volume, sha256 string, n int64) error
	GetHostImage(ctx context.Context, host, pool, volume string) (state.HostImage, bool, error)
}

// Volumes is what a copy needs of a host's libvirt; *libvirt.Conn implements it.
type Volumes interface {
	VolumeExists(ctx context.Context, pool, name string) (bool, error)
	DeleteVolume(ctx context.Context, pool, name string) (bool, error)
	UploadVolumeFrom(ctx context.Context, pool, name string, size int64, r io.Reader) error
	DownloadVolume(ctx context.Context, pool, name string, w io.Writer) (int64, error)
	VolumeFileSize(ctx context.Context, pool, name string) (int64, error)
}

// Peer is another host an image may be copied from.
type Peer struct {
	Name string
	// Dial opens a connection to the peer's libvirt; the copier closes it.
	Dial func(ctx context.Context) (PeerConn, error)
}

// PeerConn is a connection to a peer host.
type PeerConn interface {
	Volumes
	Close() error
}

// ErrUnavailable marks an image no retry can bring: not on the host, no source, and no other
// host has it. Its message follows "copy base image pool/volume onto host NAME: ".
var ErrUnavailable = errors.New("it does not exist there")

// Copier copies base images onto hosts; one copy per host and image at a time, and a launch
// that needs an image being copied waits for that copy.
type Copier struct {
	Records Records
	// Peers are every host of the fleet, in the config's order.
	Peers  []Peer
	HTTP   *http.Client
	Logger *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// ready says when this process last found an image good on a host, by host and image: a
	// launch within readyFor of that skips the check (a libvirt call made under the image's
	// lock, so a scale-out's launches would take turns at it), and a launch after it checks
	// only that the volume is there, so launches go on while MySQL is away.
	ready map[string]time.Time
}

// readyFor is how long an image found ready on a host is taken to stay there. One removed by
// hand meanwhile fails the launches that need it until then; their retries copy it again.
const readyFor = 30 * time.Second

// Image names a base image and where to find it.
type Image struct {
	Pool, Volume string
	// Source is a local path or an http(s) URL; "" copies from a peer host.
	Source string
	// SHA256 is the source's digest in hex, required with Source.
	SHA256 string
}

func (im Image) String() string { return im.Pool + "/" + im.Volume }

// Ensure makes the image present on host (whose libvirt is target), copying it when it is
// missing or when an earlier copy was interrupted. It reports whether it copied. progress, if
// not nil, is called as a copy goes (an activity's heartbeat).
func (c *Copier) Ensure(ctx context.Context, host string, target Volumes, im Image, progress func(copied int64)) (bool, error) {
	key := host + "\x00" + im.String()
	if c.readySince(key) {
		return false, nil
	}
	unlock := c.lock(key)
	defer unlock()
	if c.isReady(key) {
		exists, err := target.VolumeExists(ctx, im.Pool, im.Volume)
		if err != nil {
			return false, fmt.Errorf("look for base image %s on host %s: %w", im, host, err)
		}
		if exists {
			c.setReady(key)
			return false, nil
		}
		c.forgetReady(key)
	}
	rec, recorded, err := c.Records.GetHostImage(ctx, host, im.Pool, im.Volume)
	if err != nil {
		return false, err
	}
	exists, err := target.VolumeExists(ctx, im.Pool, im.Volume)
	if err != nil {
		return false, fmt.Errorf("look for base image %s on host %s: %w", im, host, err)
	}
	if exists && (!recorded || rec.State == state.ImageReady) {
		c.setReady(key)
		return false, nil
	}
	if exists {
		c.Logger.Warn("removing a base image an interrupted copy left", "host", host, "image", im.String(), "since", rec.UpdatedAt)
		if _, err := target.DeleteVolume(ctx, im.Pool, im.Volume); err != nil {
			return false, fmt.Errorf("remove the partial copy of base image %s on host %s: %w", im, host, err)
		}
	}
	start := time.Now()
	n, sum, from, err := c.copy(ctx, host, target, im, progress)
	if err != nil {
		// The record stays "copying": whatever the upload left is removed by the next attempt.
		return false, fmt.Errorf("copy base image %s onto host %s: %w", im, host, err)
	}
	if err := c.Records.FinishImageCopy(ctx, host, im.Pool, im.Volume, sum, n); err != nil {
		return false, err
	}
	c.Logger.Info("base image copied", "host", host, "image", im.String(), "from", from, "bytes", n,
		"seconds", time.Since(start).Round(time.Millisecond).Seconds())
	c.setReady(key)
	return true, nil
}

// readySince says whether the image of key was found ready less than readyFor ago.
func (c *Copier) readySince(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.ready[key]
	return ok && time.Since(at) < readyFor
}

func (c *Copier) setReady(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready == nil {
		c.ready = map[string]time.Time{}
	}
	c.ready[key] = time.Now()
}

// copy streams the image from its source, or a peer that has it, into host's pool and checks
// what arrived. It returns the size, the SHA-256 of what was written and where it came from.
func (c *Copier) copy(ctx context.Context, host string, target Volumes, im Image, progress func(int64)) (int64, string, string, error) {
	if im.Source != "" {
		if err := c.Records.BeginImageCopy(ctx, host, im.Pool, im.Volume, im.Source); err != nil {
			return 0, "", "", err
		}
		src, size, err := c.open(ctx, im.Source)
		if err != nil {
			return 0, "", "", err
		}
		defer src.Close()
		n, sum, err := c.upload(ctx, target, im, size, src, progress)
		if err != nil {
			return 0, "", "", err
		}
		if !strings.EqualFold(sum, im.SHA256) {
			_, _ = target.DeleteVolume(ctx, im.Pool, im.Volume)
			return 0, "", "", fmt.Errorf("%s has SHA-256 %s, not the %s the group's image.sha256 says; the copy was removed", im.Source, sum, strings.ToLower(im.SHA256))
		}
		return n, sum, im.Source, nil
	}
	var tried []string
	for _, p := range c.Peers {
		if p.Name == host {
			continue
		}
		n, sum, err := c.fromPeer(ctx, host, target, im, p, progress)
		if err == nil {
			return n, sum, "host " + p.Name, nil
		}
		if errors.Is(err, errNotThere) {
			tried = append(tried, p.Name+" lacks it")
			continue
		}
		tried = append(tried, fmt.Sprintf("%s: %v", p.Name, err))
	}
	if len(tried) == 0 {
		return 0, "", "", fmt.Errorf("%w, no image.source is set, and there is no other host to copy it from", ErrUnavailable)
	}
	return 0, "", "", fmt.Errorf("%w, no image.source is set, and no other host has it to copy from (%s)", ErrUnavailable, strings.Join(tried, "; "))
}

var errNotThere = errors.New("not there")

func (c *Copier) fromPeer(ctx context.Context, host string, target Volumes, im Image, p Peer, progress func(int64)) (int64, string, error) {
	// A peer whose own copy is unfinished has nothing to give; one PremiScale copied and
	// verified there says what the copy must hash to.
	rec, ok, err := c.Records.GetHostImage(ctx, p.Name, im.Pool, im.Volume)
	if err != nil {
		return 0, "", err
	} else if ok && rec.State != state.ImageReady {
		return 0, "", errNotThere
	}
	conn, err := p.Dial(ctx)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	if ok, err := conn.VolumeExists(ctx, im.Pool, im.Volume); err != nil {
		return 0, "", err
	} else if !ok {
		return 0, "", errNotThere
	}
	size, err := conn.VolumeFileSize(ctx, im.Pool, im.Volume)
	if err != nil {
		return 0, "", err
	}
	if err := c.Records.BeginImageCopy(ctx, host, im.Pool, im.Volume, "host "+p.Name); err != nil {
		return 0, "", err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := conn.DownloadVolume(ctx, im.Pool, im.Volume, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	n, sum, err := c.upload(ctx, target, im, size, pr, progress)
	pr.CloseWithError(err)
	if derr := <-done; err == nil && derr != nil {
		err = derr
	}
	if err != nil {
		return 0, "", err
	}
	if n != size {
		_, _ = target.DeleteVolume(ctx, im.Pool, im.Volume)
		return 0, "", fmt.Errorf("copied %d bytes of the %d host %s has; the copy was removed", n, size, p.Name)
	}
	if rec.SHA256 != "" && !strings.EqualFold(rec.SHA256, sum) {
		_, _ = target.DeleteVolume(ctx, im.Pool, im.Volume)
		return 0, "", fmt.Errorf("the copy from host %s has SHA-256 %s, not the %s recorded when it was copied there; the copy was removed", p.Name, sum, rec.SHA256)
	}
	return n, sum, nil
}

// upload writes size bytes of r to the image's volume on target and returns how many bytes it
// read and their SHA-256.
func (c *Copier) upload(ctx context.Context, target Volumes, im Image, size int64, r io.Reader, progress func(int64)) (int64, string, error) {
	h := sha256.New()
	counted := &progressReader{r: io.TeeReader(r, h), report: progress}
	if err := target.UploadVolumeFrom(ctx, im.Pool, im.Volume, size, counted); err != nil {
		return counted.n, "", err
	}
	if counted.n != size {
		return counted.n, "", fmt.Errorf("the source ended after %d of %d bytes", counted.n, size)
	}
	return counted.n, hex.EncodeToString(h.Sum(nil)), nil
}

// open opens a local file or an http(s) URL and says how long it is.
func (c *Copier) open(ctx context.Context, source string) (io.ReadCloser, int64, error) {
	if !strings.HasPrefix(source, "http://") && !strings.HasPrefix(source, "https://") {
		f, err := os.Open(source)
		if err != nil {
			return nil, 0, fmt.Errorf("open image.source: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, fmt.Errorf("open image.source: %w", err)
		}
		return f, st.Size(), nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("image.source: %w", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("download image.source: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("download image.source %s: HTTP %s", source, resp.Status)
	}
	if resp.ContentLength <= 0 {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("download image.source %s: the server did not say how long it is (Content-Length), which an upload to libvirt needs", source)
	}
	return resp.Body, resp.ContentLength, nil
}

func (c *Copier) isReady(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.ready[key]
	return ok
}

func (c *Copier) forgetReady(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.ready, key)
}

func (c *Copier) lock(key string) func() {
	c.mu.Lock()
	if c.locks == nil {
		c.locks = map[string]*sync.Mutex{}
	}
	l, ok := c.locks[key]
	if !ok {
		l = &sync.Mutex{}
		c.locks[key] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// progressReader counts what is read and reports it every 16 MiB.
type progressReader struct {
	r          io.Reader
	n, lastRep int64
	report     func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.report != nil && p.n-p.lastRep >= 16<<20 {
		p.lastRep = p.n
		p.report(p.n)
	}
	return n, err
}

// DialPeer returns a Peer dialling uri with go-libvirt.
func DialPeer(name, uri string, opts libvirt.Options) Peer {
	return Peer{Name: name, Dial: func(ctx context.Context) (PeerConn, error) {
		conn, err := libvirt.Dial(ctx, uri, opts)
		if err != nil {
			return nil, fmt.Errorf("connect to host %s at %s: %w", name, uri, err)
		}
		return conn, nil
	}}
}
