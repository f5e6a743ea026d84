package gitsource

import (
	"archive/zip"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Limits of one CODE_ZIP artifact.
type ZipLimits struct {
	MaxFiles int   // 0: 200,000
	MaxBytes int64 // uncompressed; 0: 4 GiB
}

// ZipCommit writes the tree of a commit to w as a zip: regular files 0644,
// executables 0755, symbolic links as link entries (their target as
// content, as zip and unzip keep them). Submodules are left out (their
// content is in another repository), as Tree.Files does. Entries carry
// the commit's committer time, so the same commit zips to the same bytes.
func ZipCommit(c *object.Commit, w io.Writer, lim ZipLimits) (files int, err error) {
	if lim.MaxFiles <= 0 {
		lim.MaxFiles = 200000
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = 4 << 30
	}
	tree, err := c.Tree()
	if err != nil {
		return 0, err
	}
	zw := zip.NewWriter(w)
	when := c.Committer.When
	if when.Before(time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)) {
		when = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC) // zip's epoch
	}
	var total int64
	err = tree.Files().ForEach(func(f *object.File) error {
		files++
		if files > lim.MaxFiles {
			return fmt.Errorf("the commit's tree has more than %d files", lim.MaxFiles)
		}
		total += f.Size
		if total > lim.MaxBytes {
			return fmt.Errorf("the commit's tree is larger than %d bytes", lim.MaxBytes)
		}
		h := &zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: when}
		switch f.Mode {
		case filemode.Executable:
			h.SetMode(0o755)
		case filemode.Symlink:
			h.SetMode(fs.ModeSymlink | 0o777)
			h.Method = zip.Store
		default:
			h.SetMode(0o644)
		}
		out, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		_, err = io.Copy(out, r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return files, err
	}
	return files, zw.Close()
}
