package s3api

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"

	"github.com/pipelined/pipelined/internal/sigv4"
)

// s3Error is an S3 error response.
type s3Error struct {
	Status  int
	Code    string
	Message string
	// Extra elements some codes carry (StringToSign, CanonicalRequest, ...).
	extra []xmlElem
}

type xmlElem struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

func (e *s3Error) Error() string { return e.Code + ": " + e.Message }

func newErr(status int, code, msg string) *s3Error {
	return &s3Error{Status: status, Code: code, Message: msg}
}

var (
	errAccessDenied = func() *s3Error { return newErr(http.StatusForbidden, "AccessDenied", "Access Denied") }
	errNoSuchBucket = func() *s3Error { return newErr(404, "NoSuchBucket", "The specified bucket does not exist") }
	errNoSuchKey    = func() *s3Error { return newErr(404, "NoSuchKey", "The specified key does not exist.") }
	errNoSuchUpload = func() *s3Error {
		return newErr(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.")
	}
	errInvalidBucket = func() *s3Error { return newErr(400, "InvalidBucketName", "The specified bucket is not valid.") }
	errInvalidKey    = func() *s3Error { return newErr(400, "KeyTooLongError", "Your key is too long or not valid UTF-8.") }
	errBadDigest     = func() *s3Error {
		return newErr(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
	}
	errIncompleteBody = func() *s3Error {
		return newErr(400, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	}
	errMalformedXML = func() *s3Error {
		return newErr(400, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.")
	}
	errMissingLength = func() *s3Error {
		return newErr(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
	}
	errTooLarge = func() *s3Error {
		return newErr(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size.")
	}
	errNotImplemented = func() *s3Error {
		return newErr(501, "NotImplemented", "A header or query you provided implies functionality that is not implemented.")
	}
	errInternal = func() *s3Error {
		return newErr(500, "InternalError", "We encountered an internal error. Please try again.")
	}
	errPrecondition = func() *s3Error {
		return newErr(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
	}
	errInvalidPart = func() *s3Error {
		return newErr(400, "InvalidPart", "One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
	}
	errInvalidPartOrder = func() *s3Error {
		return newErr(400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts must be ordered by part number.")
	}
	errEntityTooSmall = func() *s3Error {
		return newErr(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.")
	}
	errSHA256Mismatch = func() *s3Error {
		return newErr(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
	}
	errChunkSigMismatch = func() *s3Error {
		return newErr(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	}
)

func errInvalidArgument(msg string) *s3Error { return newErr(400, "InvalidArgument", msg) }
func errInvalidRequest(msg string) *s3Error  { return newErr(400, "InvalidRequest", msg) }

// errNotImplementedOp says what is not served, for requests a client may
// reasonably expect to work (conditional deletes on LastModifiedTime or
// Size).
func errNotImplementedOp(msg string) *s3Error { return newErr(501, "NotImplemented", msg) }

// withArgument adds the ArgumentName and ArgumentValue elements S3 gives
// an InvalidArgument error about a header or query parameter.
func (e *s3Error) withArgument(name, value string) *s3Error {
	e.extra = append(e.extra,
		xmlElem{XMLName: xml.Name{Local: "ArgumentName"}, Value: name},
		xmlElem{XMLName: xml.Name{Local: "ArgumentValue"}, Value: value})
	return e
}

// errInvalidVersionID is S3's answer to a request naming, in an
// unversioned bucket, a version other than "null" (whether or not the key
// exists); errEmptyVersionID to ?versionId= with no value.
func errInvalidVersionID(v string) *s3Error {
	return errInvalidArgument("Invalid version id specified").withArgument("versionId", v)
}

func errEmptyVersionID() *s3Error {
	return errInvalidArgument("Version id cannot be the empty string").withArgument("versionId", "")
}

// errCopySourceTooLarge is S3's answer to a copy of more than 5 GiB in one
// request: a CopyObject source, or an UploadPartCopy range.
func errCopySourceTooLarge() *s3Error {
	return errInvalidRequest("The specified copy source is larger than the maximum allowable size for a copy source: " + strconv.Itoa(maxObjectSize))
}

// errCopyRangeForm is S3's answer to an x-amz-copy-source-range that is
// not "bytes=first-last" with first <= last.
func errCopyRangeForm(v string) *s3Error {
	return errInvalidArgument("The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy").
		withArgument("x-amz-copy-source-range", v)
}

// errCopyRangeEnd is S3's answer to a copy range that ends past the source
// object; errCopyRangeStart to one that starts past it.
func errCopyRangeEnd(v string, size int64) *s3Error {
	return errInvalidArgument("Range specified is not valid for source object of size: "+strconv.FormatInt(size, 10)).
		withArgument("x-amz-copy-source-range", v)
}

func errCopyRangeStart() *s3Error {
	return errInvalidRequest("The specified copy range is invalid for the source object size")
}

// errMissingContentMD5 is S3's answer to a request that must carry an
// integrity value (DeleteObjects) and carries none.
func errMissingContentMD5() *s3Error {
	return errInvalidRequest("Missing required header for this request: Content-MD5")
}

// errCopyToItself is S3's answer to a CopyObject onto its own source that
// changes nothing (metadata directive COPY).
func errCopyToItself() *s3Error {
	return errInvalidRequest("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
}

// errInvalidCopySource is S3's answer to an x-amz-copy-source it cannot
// parse into a bucket and a key.
func errInvalidCopySource() *s3Error {
	return errInvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
}

// errFromSigv4 maps a verification failure to S3's error.
func errFromSigv4(err error, presigned bool) *s3Error {
	var e *sigv4.Error
	if !errors.As(err, &e) {
		return errInternal()
	}
	switch e.Kind {
	case sigv4.MissingAuth:
		return errAccessDenied()
	case sigv4.UnknownAccessKey:
		return newErr(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
	case sigv4.KeyNotAccepted:
		return newErr(403, "AccessDenied", e.Message)
	case sigv4.SignatureMismatch:
		if e.CanonicalRequest == "" { // the declared payload hash is wrong
			return errSHA256Mismatch()
		}
		se := newErr(403, "SignatureDoesNotMatch", e.Message)
		se.extra = []xmlElem{
			{XMLName: xml.Name{Local: "StringToSign"}, Value: e.StringToSign},
			{XMLName: xml.Name{Local: "CanonicalRequest"}, Value: e.CanonicalRequest},
		}
		return se
	case sigv4.RequestExpired:
		if presigned {
			return newErr(403, "AccessDenied", e.Message)
		}
		return newErr(403, "RequestTimeTooSkewed", "The difference between the request time and the current time is too large. "+e.Message)
	case sigv4.InvalidToken:
		return newErr(400, "InvalidToken", "The provided token is malformed or otherwise invalid.")
	case sigv4.ExpiredToken:
		return newErr(400, "ExpiredToken", "The provided token has expired.")
	case sigv4.WrongScope, sigv4.IncompleteSignature:
		if presigned {
			return newErr(400, "AuthorizationQueryParametersError", e.Message)
		}
		return newErr(400, "AuthorizationHeaderMalformed", e.Message)
	}
	return errAccessDenied()
}

type errorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string
	Message   string
	Resource  string    `xml:",omitempty"`
	RequestID string    `xml:"RequestId"`
	Extra     []xmlElem `xml:",any"`
}

func writeError(w http.ResponseWriter, r *http.Request, e *s3Error, reqID string) {
	h := w.Header()
	h.Del("ETag")
	h.Del("Content-Length")
	h.Del("Last-Modified")
	if r.Method == http.MethodHead {
		// HEAD has no body: S3 answers with the status alone.
		w.WriteHeader(e.Status)
		return
	}
	body, _ := xml.Marshal(errorBody{Code: e.Code, Message: e.Message, Resource: r.URL.Path, RequestID: reqID, Extra: e.extra})
	out := append([]byte(xml.Header), body...)
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(e.Status)
	w.Write(out)
}
