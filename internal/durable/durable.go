// Package durable writes and removes small state files (persistent
// reservations, ROD token records) so that after a crash or a power loss
// each is either whole or absent: the data goes to a temporary file beside
// the target, is synced, renamed over the target, and the directory is
// synced. A process that dies before the rename leaves its temporary
// file, which Temps finds for the next one to remove.
package durable

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// tempMark separates a target's name from the random part of the name of
// its temporary file: "." + name + tempMark + random.
const tempMark = ".tmp"

// WriteFile replaces path with data, creating its directory if needed.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempMark+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// Remove removes path, if it exists, and syncs its directory.
func Remove(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir makes the entries of directory dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Temps returns the temporary files WriteFile left in dir for targets
// whose name match accepts: regular files only, no symbolic links. A
// directory that does not exist holds none.
func Temps(dir string, match func(target string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, ".") {
			continue
		}
		if i := strings.LastIndex(name, tempMark); i > 1 && match(name[1:i]) {
			out = append(out, filepath.Join(dir, name))
		}
	}
	return out, nil
}
