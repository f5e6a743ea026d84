//go:build !unix

package dirlock

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("dirlock: would block")

// tryLock refuses: without flock there is no lock the kernel releases on a
// crash, and a lock that can go stale is worse than a clear refusal.
func tryLock(*os.File) error { return ErrNotSupported }
