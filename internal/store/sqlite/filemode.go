package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// fileMode is the mode of the database file and of its -wal and -shm
// files: they hold the job nonce hashes, sealed secrets and everything
// else of the server's state, for its user only.
const fileMode fs.FileMode = 0o600

// restrictFileMode creates the database file with fileMode when it does not
// exist (SQLite gives the -wal and -shm files it creates the database
// file's mode), and narrows the mode of existing files (a database created
// before this rule, or copied in with a wider umask).
func restrictFileMode(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&^fileMode != 0 {
			if err := os.Chmod(p, fileMode); err != nil {
				return fmt.Errorf("restrict the mode of %s to %v: %w", p, fileMode, err)
			}
		}
	}
	return nil
}
