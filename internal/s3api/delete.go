package s3api

import (
	"encoding/xml"
	"errors"
)

// DeleteObjects (POST /bucket?delete).
//
// Authorization. S3 has no permission of its own for DeleteObjects: each
// key needs s3:DeleteObject, and a key the caller may not delete gets an
// AccessDenied entry in the answer while the others are deleted. The keys
// are in the body, so the request-level check that every other route makes
// before reading the body cannot decide it; instead (route.perKey) the
// handler reads the body (bounded, and only for a signature-verified
// caller), asks the Authorizer for Delete on each key, and:
//
//   - refuses the whole request with AccessDenied if no key at all may be
//     deleted. That is the least a credential must hold to get anything out
//     of the request, and it keeps a credential with no Delete permission
//     (every job credential today) from learning anything, even whether
//     the bucket exists;
//   - only then checks that the bucket exists, and deletes the allowed
//     keys, reporting AccessDenied for the others.
//
// The body must carry Content-MD5 or an x-amz-checksum-* value, as S3
// requires (readVerifiedBody).

// maxDeleteKeys is S3's limit of keys per DeleteObjects.
const maxDeleteKeys = 1000

type deleteRequest struct {
	XMLName xml.Name       `xml:"Delete"`
	Objects []deleteTarget `xml:"Object"`
	Quiet   bool           `xml:"Quiet"`
}

// deleteTarget is one <Object> of a DeleteObjects body.
type deleteTarget struct {
	Key       string
	VersionId string
	// Conditions (pointers: present or not).
	ETag             *string
	LastModifiedTime *string
	Size             *string
}

type deletedEntry struct {
	Key       string
	VersionId string `xml:",omitempty"`
}

type deleteErrorEntry struct {
	Key       string
	VersionId string `xml:",omitempty"`
	Code      string
	Message   string
}

type deleteResult struct {
	XMLName xml.Name `xml:"DeleteResult"`
	NS      string   `xml:"xmlns,attr"`
	Deleted []deletedEntry
	Errors  []deleteErrorEntry `xml:"Error"`
}

// parseDeleteRequest parses and checks a DeleteObjects body: 1 to 1000
// objects, each with a valid key; MalformedXML otherwise, as S3 answers.
func parseDeleteRequest(body []byte) (*deleteRequest, *s3Error) {
	var req deleteRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		return nil, errMalformedXML()
	}
	if len(req.Objects) == 0 || len(req.Objects) > maxDeleteKeys {
		return nil, errMalformedXML()
	}
	for _, o := range req.Objects {
		if !validKey(o.Key) {
			return nil, errMalformedXML()
		}
	}
	return &req, nil
}

func (h *Handler) deleteObjects(q *request) *s3Error {
	body, e := h.readVerifiedBody(q)
	if e != nil {
		return e
	}
	req, e := parseDeleteRequest(body)
	if e != nil {
		return e
	}
	allowed, someAllowed := h.allowDeletes(q, req.Objects)
	if !someAllowed {
		return errAccessDenied()
	}
	if !h.st.bucketExists(q.bucket) {
		return errNoSuchBucket()
	}
	out := deleteResult{NS: s3NS}
	for i, o := range req.Objects {
		e := errAccessDenied()
		if allowed[i] {
			e = h.deleteTarget(q, o)
		}
		if e != nil {
			out.Errors = append(out.Errors, deleteErrorEntry{Key: o.Key, VersionId: o.VersionId, Code: e.Code, Message: e.Message})
			continue
		}
		if !req.Quiet {
			out.Deleted = append(out.Deleted, deletedEntry{Key: o.Key, VersionId: o.VersionId})
		}
	}
	return writeXML(q.w, 200, out)
}

// allowDeletes asks the Authorizer for Delete on each key; someAllowed tells
// whether at least one may be deleted.
func (h *Handler) allowDeletes(q *request, objs []deleteTarget) (allowed []bool, someAllowed bool) {
	allowed = make([]bool, len(objs))
	for i, o := range objs {
		allowed[i] = h.auth.Allow(q.r.Context(), q.res.Credential, Delete, q.bucket, o.Key)
		someAllowed = someAllowed || allowed[i]
	}
	return allowed, someAllowed
}

// deleteTarget deletes one object of a DeleteObjects; a missing one is a
// success, as in S3.
func (h *Handler) deleteTarget(q *request, o deleteTarget) *s3Error {
	// The store keeps no versions: "null" names the one there is.
	if o.VersionId != "" && o.VersionId != "null" {
		return newErr(404, "NoSuchVersion", "The specified version does not exist.")
	}
	// Never delete unconditionally what the client asked to delete on a
	// condition we do not evaluate.
	if o.LastModifiedTime != nil || o.Size != nil {
		return errNotImplementedOp("Conditional deletes on LastModifiedTime or Size are not implemented.")
	}
	var cond func(*objMeta) bool
	if o.ETag != nil {
		want := *o.ETag
		cond = func(m *objMeta) bool { return etagMatch(want, m.ETag) }
	}
	err := h.st.removeIf(q.bucket, o.Key, cond)
	if errors.Is(err, errConditionFailed) {
		return errPrecondition()
	}
	if err != nil {
		h.log.Error("s3 delete objects", "err", err, "request_id", q.id)
		return errInternal()
	}
	return nil
}
