package libvirt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
	"libvirt.org/go/libvirtxml"
)

// minUploadRate is the slowest upload we wait for: an upload may take
// CallTimeout plus its size at this rate before it counts as hung.
const minUploadRate = 4 << 20 // bytes per second

type volInfo struct {
	path     string
	format   string
	capacity uint64
}

// EnsureVolume creates an empty volume of capacityBytes in pool unless one of
// that name exists. format is a libvirt volume format ("raw" when empty).
func (c *Conn) EnsureVolume(ctx context.Context, pool, name string, capacityBytes uint64, format string) (bool, error) {
	if format == "" {
		format = "raw"
	}
	vol := libvirtxml.StorageVolume{
		Name:       name,
		Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: capacityBytes},
		Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
		Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: format}},
	}
	return c.ensureVolume(ctx, pool, name, func(context.Context) (libvirtxml.StorageVolume, error) { return vol, nil })
}

// EnsureOverlayVolume creates a qcow2 volume in pool whose backing store is
// basePool/baseVolume, with the base's capacity, unless a volume of that name
// exists already.
func (c *Conn) EnsureOverlayVolume(ctx context.Context, pool, name, basePool, baseVolume string) (created bool, err error) {
	return c.ensureVolume(ctx, pool, name, func(ctx context.Context) (libvirtxml.StorageVolume, error) {
		base, err := c.volumeInfo(ctx, basePool, baseVolume)
		if hasCode(err, golibvirt.ErrNoStorageVol, golibvirt.ErrNoStoragePool) {
			return libvirtxml.StorageVolume{}, invalidSpec(fmt.Errorf("base image %s/%s does not exist", basePool, baseVolume))
		}
		if err != nil {
			return libvirtxml.StorageVolume{}, fmt.Errorf("base image: %w", err)
		}
		format := base.format
		if format == "" {
			format = "qcow2"
		}
		return libvirtxml.StorageVolume{
			Name:       name,
			Capacity:   &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: base.capacity},
			Allocation: &libvirtxml.StorageVolumeSize{Unit: "bytes", Value: 0},
			Target:     &libvirtxml.StorageVolumeTarget{Format: &libvirtxml.StorageVolumeTargetFormat{Type: "qcow2"}},
			BackingStore: &libvirtxml.StorageVolumeBackingStore{
				Path:   base.path,
				Format: &libvirtxml.StorageVolumeTargetFormat{Type: format},
			},
		}, nil
	})
}

// ensureVolume creates pool/name from the definition build returns, unless it
// exists. build runs only when a volume is to be created.
func (c *Conn) ensureVolume(ctx context.Context, pool, name string, build func(context.Context) (libvirtxml.StorageVolume, error)) (bool, error) {
	what := fmt.Sprintf("create volume %s/%s", pool, name)
	unlock, err := c.names.lock(ctx, "volume/"+pool+"/"+name)
	if err != nil {
		return false, fmt.Errorf("%s on %s: %w", what, c.uri, err)
	}
	defer unlock()

	p, err := c.lookupPool(ctx, pool)
	if hasCode(err, golibvirt.ErrNoStoragePool) {
		return false, invalidSpec(fmt.Errorf("%s on %s: storage pool %s does not exist", what, c.uri, pool))
	}
	if err != nil {
		return false, err
	}
	if _, found, err := c.lookupVolume(ctx, p, name, false); err != nil || found {
		return false, err
	}
	def, err := build(ctx)
	if err != nil {
		return false, fmt.Errorf("%s on %s: %w", what, c.uri, err)
	}
	doc, err := def.Marshal()
	if err != nil {
		return false, fmt.Errorf("%s: render XML: %w", what, err)
	}
	_, err = call(ctx, c, what, func(l *golibvirt.Libvirt) (golibvirt.StorageVol, error) {
		return l.StorageVolCreateXML(p, doc, 0)
	})
	if err != nil {
		// Someone else created it first (libvirt says "already exists", or for a
		// file libvirt did not know about yet, "file exists"): that is success.
		if _, found, lerr := c.lookupVolume(ctx, p, name, true); lerr == nil && found {
			return false, nil
		}
		return false, err
	}
	c.log.Info("created volume", "pool", pool, "volume", name)
	return true, nil
}

// DeleteVolume deletes pool/name if it exists.
func (c *Conn) DeleteVolume(ctx context.Context, pool, name string) (existed bool, err error) {
	unlock, err := c.names.lock(ctx, "volume/"+pool+"/"+name)
	if err != nil {
		return false, fmt.Errorf("delete volume %s/%s on %s: %w", pool, name, c.uri, err)
	}
	defer unlock()
	p, err := c.lookupPool(ctx, pool)
	if err != nil {
		return false, err
	}
	vol, found, err := c.lookupVolume(ctx, p, name, false)
	if err != nil || !found {
		return false, err
	}
	err = do(ctx, c, fmt.Sprintf("delete volume %s/%s", pool, name), func(l *golibvirt.Libvirt) error {
		return l.StorageVolDelete(vol, golibvirt.StorageVolDeleteNormal)
	})
	if hasCode(err, golibvirt.ErrNoStorageVol) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	c.log.Info("deleted volume", "pool", pool, "volume", name)
	return true, nil
}

// VolumeExists reports whether pool/name exists. It refreshes the pool before
// answering no, so files placed in a directory pool behind libvirt's back count.
func (c *Conn) VolumeExists(ctx context.Context, pool, name string) (bool, error) {
	p, err := c.lookupPool(ctx, pool)
	if err != nil {
		return false, err
	}
	_, found, err := c.lookupVolume(ctx, p, name, true)
	return found, err
}

// UploadVolume makes pool/name a raw volume holding exactly data. The upload
// runs on its own short-lived connection: go-libvirt serves a connection with
// one reader, so a large upload would stall every other call on the shared one.
func (c *Conn) UploadVolume(ctx context.Context, pool, name string, data []byte) error {
	what := fmt.Sprintf("upload volume %s/%s", pool, name)
	if len(data) == 0 {
		return fmt.Errorf("%s on %s: no data", what, c.uri)
	}
	unlock, err := c.names.lock(ctx, "upload/"+pool+"/"+name)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", what, c.uri, err)
	}
	defer unlock()

	// A volume left by an earlier attempt with other content of another size
	// is recreated: the upload must cover the whole volume.
	if info, err := c.volumeInfo(ctx, pool, name); err == nil && info.capacity != uint64(len(data)) {
		if _, err := c.DeleteVolume(ctx, pool, name); err != nil {
			return fmt.Errorf("%s: replace volume of %d bytes: %w", what, info.capacity, err)
		}
	} else if err != nil && !hasCode(err, golibvirt.ErrNoStorageVol) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := c.EnsureVolume(ctx, pool, name, uint64(len(data)), "raw"); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}

	lv, err := c.dial(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { go func() { _ = c.disconnect(lv) }() }()

	timeout := c.timeout + time.Duration(len(data)/minUploadRate)*time.Second
	_, err = runBounded(ctx, c, lv, what, timeout, func(l *golibvirt.Libvirt) (struct{}, error) {
		p, err := l.StoragePoolLookupByName(pool)
		if err != nil {
			return struct{}{}, err
		}
		vol, err := l.StorageVolLookupByName(p, name)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, l.StorageVolUpload(vol, bytes.NewReader(data), 0, uint64(len(data)), 0)
	})
	if err != nil {
		return err
	}
	c.log.Info("uploaded volume", "pool", pool, "volume", name, "bytes", len(data))
	return nil
}

// volumeInfo returns the path, format and capacity of an existing volume.
// Missing volumes are reported with ERR_NO_STORAGE_VOL in the chain.
func (c *Conn) volumeInfo(ctx context.Context, pool, name string) (volInfo, error) {
	p, err := c.lookupPool(ctx, pool)
	if err != nil {
		return volInfo{}, err
	}
	vol, found, err := c.lookupVolume(ctx, p, name, true)
	if err != nil {
		return volInfo{}, err
	}
	if !found {
		return volInfo{}, fmt.Errorf("look up volume %s/%s on %s: %w", pool, name, c.uri,
			golibvirt.Error{Code: uint32(golibvirt.ErrNoStorageVol), Message: "storage volume not found"})
	}
	doc, err := call(ctx, c, fmt.Sprintf("describe volume %s/%s", pool, name), func(l *golibvirt.Libvirt) (string, error) {
		return l.StorageVolGetXMLDesc(vol, 0)
	})
	if err != nil {
		return volInfo{}, err
	}
	var def libvirtxml.StorageVolume
	if err := def.Unmarshal(doc); err != nil {
		return volInfo{}, fmt.Errorf("parse XML of volume %s/%s on %s: %w", pool, name, c.uri, err)
	}
	info := volInfo{}
	if def.Capacity != nil {
		info.capacity = scaleSize(def.Capacity.Value, def.Capacity.Unit)
	}
	if def.Target != nil {
		info.path = def.Target.Path
		if def.Target.Format != nil {
			info.format = def.Target.Format.Type
		}
	}
	if info.path == "" {
		info.path, err = call(ctx, c, fmt.Sprintf("get path of volume %s/%s", pool, name), func(l *golibvirt.Libvirt) (string, error) {
			return l.StorageVolGetPath(vol)
		})
		if err != nil {
			return volInfo{}, err
		}
	}
	return info, nil
}

func (c *Conn) lookupPool(ctx context.Context, pool string) (golibvirt.StoragePool, error) {
	return call(ctx, c, "look up storage pool "+pool, func(l *golibvirt.Libvirt) (golibvirt.StoragePool, error) {
		return l.StoragePoolLookupByName(pool)
	})
}

// lookupVolume finds name in p. With refreshOnMiss, a miss triggers a pool
// refresh and a second look, for volumes created outside libvirt.
func (c *Conn) lookupVolume(ctx context.Context, p golibvirt.StoragePool, name string, refreshOnMiss bool) (golibvirt.StorageVol, bool, error) {
	what := fmt.Sprintf("look up volume %s/%s", p.Name, name)
	lookup := func() (golibvirt.StorageVol, bool, error) {
		vol, err := call(ctx, c, what, func(l *golibvirt.Libvirt) (golibvirt.StorageVol, error) {
			return l.StorageVolLookupByName(p, name)
		})
		if hasCode(err, golibvirt.ErrNoStorageVol) {
			return golibvirt.StorageVol{}, false, nil
		}
		return vol, err == nil, err
	}
	vol, found, err := lookup()
	if err != nil || found || !refreshOnMiss {
		return vol, found, err
	}
	err = do(ctx, c, "refresh storage pool "+p.Name, func(l *golibvirt.Libvirt) error {
		return l.StoragePoolRefresh(p, 0)
	})
	if err != nil {
		return golibvirt.StorageVol{}, false, err
	}
	return lookup()
}

// scaleSize converts a libvirt size with unit to bytes (libvirt reports bytes
// today; the units are handled for XML written by other tools).
func scaleSize(v uint64, unit string) uint64 {
	switch unit {
	case "", "b", "bytes":
		return v
	case "KB":
		return v * 1000
	case "k", "KiB":
		return v << 10
	case "MB":
		return v * 1000 * 1000
	case "M", "MiB":
		return v << 20
	case "GB":
		return v * 1000 * 1000 * 1000
	case "G", "GiB":
		return v << 30
	case "TB":
		return v * 1000 * 1000 * 1000 * 1000
	case "T", "TiB":
		return v << 40
	default:
		return v
	}
}

// UploadVolumeFrom makes pool/name a volume holding the size bytes r yields: a base image copied
// onto this host. It runs on a connection of its own (a long upload would stall every other
// call on the shared one), at a rate of at least minUploadRate, and refreshes the pool at the
// end so that libvirt reads the content's format (a qcow2 file is a qcow2 volume). A volume of
// that name is replaced.
func (c *Conn) UploadVolumeFrom(ctx context.Context, pool, name string, size int64, r io.Reader) error {
	what := fmt.Sprintf("upload volume %s/%s", pool, name)
	if size <= 0 {
		return fmt.Errorf("%s on %s: no data", what, c.uri)
	}
	unlock, err := c.names.lock(ctx, "upload/"+pool+"/"+name)
	if err != nil {
		return fmt.Errorf("%s on %s: %w", what, c.uri, err)
	}
	defer unlock()
	if _, err := c.DeleteVolume(ctx, pool, name); err != nil {
		return fmt.Errorf("%s: replace the volume there: %w", what, err)
	}
	if _, err := c.EnsureVolume(ctx, pool, name, uint64(size), "raw"); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	err = c.stream(ctx, what, pool, name, size, func(l *golibvirt.Libvirt, p golibvirt.StoragePool, vol golibvirt.StorageVol) error {
		if err := l.StorageVolUpload(vol, io.LimitReader(r, size), 0, uint64(size), 0); err != nil {
			return err
		}
		return l.StoragePoolRefresh(p, 0)
	})
	if err != nil {
		return err
	}
	c.log.Info("uploaded volume", "pool", pool, "volume", name, "bytes", size)
	return nil
}

// stream runs a volume transfer of size bytes on a connection of its own (a stream holds its
// connection for as long as it runs), bounded by the time the transfer may take at the slowest
// rate accepted.
func (c *Conn) stream(ctx context.Context, what, pool, name string, size int64, f func(*golibvirt.Libvirt, golibvirt.StoragePool, golibvirt.StorageVol) error) error {
	lv, err := c.dial(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { go func() { _ = c.disconnect(lv) }() }()
	timeout := c.timeout + time.Duration(size/minUploadRate)*time.Second
	_, err = runBounded(ctx, c, lv, what, timeout, func(l *golibvirt.Libvirt) (struct{}, error) {
		p, err := l.StoragePoolLookupByName(pool)
		if err != nil {
			return struct{}{}, err
		}
		vol, err := l.StorageVolLookupByName(p, name)
		if err != nil {
			return struct{}{}, err
		}
		return struct{}{}, f(l, p, vol)
	})
	return err
}

// DownloadVolume writes the content of pool/name to w, on a connection of its own, and returns
// how many bytes it wrote.
func (c *Conn) DownloadVolume(ctx context.Context, pool, name string, w io.Writer) (int64, error) {
	what := fmt.Sprintf("download volume %s/%s", pool, name)
	size, err := c.VolumeFileSize(ctx, pool, name)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	cw := &countingWriter{w: w}
	err = c.stream(ctx, what, pool, name, size, func(l *golibvirt.Libvirt, _ golibvirt.StoragePool, vol golibvirt.StorageVol) error {
		return l.StorageVolDownload(vol, cw, 0, uint64(size), 0)
	})
	if err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// VolumeFileSize is the size of pool/name's file: what a download of it yields.
func (c *Conn) VolumeFileSize(ctx context.Context, pool, name string) (int64, error) {
	p, err := c.lookupPool(ctx, pool)
	if err != nil {
		return 0, err
	}
	vol, found, err := c.lookupVolume(ctx, p, name, true)
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("volume %s/%s does not exist on %s", pool, name, c.uri)
	}
	return call(ctx, c, "get size of volume "+pool+"/"+name, func(l *golibvirt.Libvirt) (int64, error) {
		_, _, physical, err := l.StorageVolGetInfoFlags(vol, uint32(golibvirt.StorageVolGetPhysical))
		return int64(physical), err
	})
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ListVolumes returns the names of the volumes in pool, sorted.
func (c *Conn) ListVolumes(ctx context.Context, pool string) ([]string, error) {
	p, err := c.lookupPool(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("list volumes of pool %s on %s: %w", pool, c.uri, err)
	}
	vols, err := call(ctx, c, "list volumes of pool "+pool, func(l *golibvirt.Libvirt) ([]golibvirt.StorageVol, error) {
		v, _, err := l.StoragePoolListAllVolumes(p, 1, 0)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("list volumes of pool %s on %s: %w", pool, c.uri, err)
	}
	names := make([]string, len(vols))
	for i, v := range vols {
		names[i] = v.Name
	}
	slices.Sort(names)
	return names, nil
}
