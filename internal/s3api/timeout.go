package s3api

import (
	"errors"
	"net"
	"os"
)

// errRequestTimeout is S3's answer to a body that stopped arriving: the
// server's read deadline (internal/httplimit) passed while reading it.
func errRequestTimeout() *s3Error {
	return newErr(400, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.")
}

// isReadTimeout tells whether a body read failed because the connection's
// read deadline passed.
func isReadTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
