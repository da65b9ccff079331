package backstore

import (
	"sync"
	"unsafe"
)

const (
	// bounceSize is the size of one O_DIRECT bounce buffer; larger
	// misaligned requests are split into pieces this big. It is a multiple
	// of every supported device block size.
	bounceSize = 256 << 10
	// bounceAlign is the memory alignment of bounce buffers: a page, which
	// satisfies every device's O_DIRECT buffer alignment.
	bounceAlign = 4096
)

// bouncePool holds *[]byte bounce buffers of bounceSize bytes, aligned to
// bounceAlign.
var bouncePool = sync.Pool{
	New: func() any {
		b := make([]byte, bounceSize+bounceAlign)
		shift := 0
		if r := int(uintptr(unsafe.Pointer(&b[0])) % bounceAlign); r != 0 {
			shift = bounceAlign - r
		}
		b = b[shift : shift+bounceSize : shift+bounceSize]
		return &b
	},
}

// aligned reports whether p and off can go to the O_DIRECT descriptor as
// they are: offset, length and buffer address all multiples of the device's
// logical block size.
func (s *Block) aligned(p []byte, off int64) bool {
	a := s.devBlockSize
	return off%int64(a) == 0 && len(p)%a == 0 && uintptr(unsafe.Pointer(&p[0]))%uintptr(a) == 0
}

// bounceRead serves a misaligned O_DIRECT read: it reads the covering
// device blocks into bounce buffers and copies the requested bytes out.
func (s *Block) bounceRead(p []byte, off int64) error {
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	a := int64(s.devBlockSize)
	end := off + int64(len(p))
	for cs := off / a * a; cs < end; cs += bounceSize {
		ce := min(cs+bounceSize, (end+a-1)/a*a)
		buf := (*bp)[:ce-cs]
		if err := s.fd.readFull(buf, cs); err != nil {
			return err
		}
		lo := max(cs, off)
		copy(p[lo-off:], buf[lo-cs:min(ce, end)-cs])
	}
	return nil
}

// bounceWrite serves a misaligned O_DIRECT write through bounce buffers.
// Device blocks only partly covered by p are read first and patched, so the
// caller must hold s.rmw exclusively when off or the end of p is not on a
// device block boundary.
func (s *Block) bounceWrite(p []byte, off int64, fua bool) error {
	bp := bouncePool.Get().(*[]byte)
	defer bouncePool.Put(bp)
	a := int64(s.devBlockSize)
	end := off + int64(len(p))
	for cs := off / a * a; cs < end; cs += bounceSize {
		ce := min(cs+bounceSize, (end+a-1)/a*a)
		buf := (*bp)[:ce-cs]
		head := cs < off
		if head {
			if err := s.fd.readFull(buf[:a], cs); err != nil {
				return err
			}
		}
		// Skip the tail read when the head read already fetched that block.
		if ce > end && (ce-a > cs || !head) {
			if err := s.fd.readFull(buf[len(buf)-int(a):], ce-a); err != nil {
				return err
			}
		}
		lo := max(cs, off)
		copy(buf[lo-cs:], p[lo-off:min(ce, end)-off])
		if err := s.fd.writeFull(buf, cs, fua); err != nil {
			return err
		}
	}
	return nil
}
