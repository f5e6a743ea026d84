// Package s3api is pipelined's embedded artifact store: buckets and objects
// on local disk, served over the S3 REST API (path-style) so that job
// workers can use stock S3 clients (boto3, the aws CLI, aws-sdk-go-v2 and
// its upload manager) with the temporary credentials from their job data.
//
// # Embed an S3 server, or write a focused subset?
//
// We looked at the two Go S3 servers worth embedding:
//
//   - versity/versitygw (Apache-2.0) has a POSIX backend and an embedgw
//     package, but it is a whole gateway: its own HTTP framework (Fiber,
//     not net/http), its own SigV4 verification, IAM/account store, admin
//     API, WebUI, metrics and event plumbing. Our credentials are
//     job-scoped session credentials resolved by pipelined, and access is
//     decided per object by the engine; bending versitygw's IAM to that, and
//     mounting a Fiber app under our net/http server next to the
//     CodePipeline API, would cost more than the subset we need, and would
//     pull in a large dependency tree we would have to track for security
//     fixes.
//   - johannesboyne/gofakes3 is meant for tests: it does not verify
//     signatures at all, and its backends are not built for safe, durable
//     storage of 100 MB objects.
//
// So we write the subset CodePipeline job workers use, on net/http, reusing
// internal/sigv4 for authentication. Dependencies: the standard library and
// internal/sigv4 only (the AWS SDK, boto3 and the aws CLI are used by the
// tests).
//
// # What is served
//
// ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
// PutObject, GetObject (single byte ranges, If-Match, If-None-Match),
// HeadObject, DeleteObject, DeleteObjects, CopyObject, ListObjectsV2
// (prefix, delimiter, max-keys, continuation-token, start-after,
// encoding-type=url), multipart uploads (CreateMultipartUpload,
// UploadPart, UploadPartCopy, CompleteMultipartUpload with the
// "md5-of-md5s-N" ETag, AbortMultipartUpload, ListParts,
// ListMultipartUploads), and object tagging (GetObjectTagging,
// PutObjectTagging, DeleteObjectTagging, and x-amz-tagging on PutObject,
// CreateMultipartUpload and CopyObject). Anything else answers
// NotImplemented (bucket tagging and ACLs included: DELETE ?acl does not
// delete the object).
//
//   - DeleteObject: ?versionId=null is the object (the store keeps no
//     versions, like an unversioned S3 bucket); any other id is refused
//     as S3 refuses it on an unversioned bucket, 400 InvalidArgument
//     "Invalid version id specified", and nothing is deleted (an empty id:
//     InvalidArgument "Version id cannot be the empty string").
//   - DeleteObjects: up to 1000 keys (MalformedXML beyond), a body of at
//     most 4 MiB, which must carry Content-MD5 or an x-amz-checksum-*
//     header or trailer (current SDKs send CRC32 only), verified; without
//     either, InvalidRequest "Missing required header for this request:
//     Content-MD5", as S3 answers. A missing key counts as deleted; Quiet
//     leaves out the Deleted entries. VersionId "null" is the object
//     (other ids: NoSuchVersion), an ETag condition is evaluated
//     (PreconditionFailed), LastModifiedTime and Size conditions are not
//     (NotImplemented for that key, which is kept).
//   - CopyObject: x-amz-copy-source "[/]bucket/key" URL-encoded, with
//     ?versionId=null only (the store keeps no versions: any other id is
//     InvalidArgument); x-amz-metadata-directive COPY (default) or
//     REPLACE; x-amz-copy-source-if-match, -if-none-match,
//     -if-modified-since, -if-unmodified-since with S3's precedence;
//     x-amz-checksum-algorithm adds a checksum. Sources up to 5 GiB. A copy
//     onto itself must change something (REPLACE, or a new checksum):
//     InvalidRequest otherwise, as in S3. The bytes are copied to a temp
//     file and committed like a PutObject; the source's checksums (and the
//     MD5 of a single-part source) are recomputed on the way and must
//     match, then carry over. The copy of a multipart object is single-part
//     (its ETag is the MD5).
//   - UploadPartCopy: x-amz-copy-source as for CopyObject, with the same
//     four x-amz-copy-source-if-* conditions; x-amz-copy-source-range
//     "bytes=first-last" only, validated as S3 does (InvalidArgument for
//     another form or a range ending past the source, "Range specified is
//     not valid for source object of size: N"; InvalidRequest for one
//     starting past it). At most 5 GiB per part, as for UploadPart. The
//     part's ETag is the MD5 of the copied bytes; in an upload created
//     with a checksum algorithm, its checksum is computed over them and
//     returned in CopyPartResult (CompleteMultipartUpload checks it). This
//     is how the aws CLI copies objects above its multipart threshold
//     (8 MB by default) between keys (aws s3 cp, aws s3 mv).
//   - Object tagging (see tagging.go): GET, PUT and DELETE ?tagging on an
//     object, ?versionId=null only. S3's limits: at most 10 tags
//     (BadRequest beyond, as S3 answers), keys of 1 to 128 and values of 0
//     to 256 UTF-16 code units, unique keys, no "aws:" keys (InvalidTag);
//     S3's restriction of tags to letters, digits, spaces and the
//     symbols "_.:/=+-@" is not applied, only control characters are
//     refused.
//     PutObjectTagging's body must carry Content-MD5 or an x-amz-checksum-*
//     value, as S3 requires (InvalidRequest otherwise); a document that is
//     not a Tagging with a TagSet of Tags with a Key and a Value is
//     MalformedXML. Changing tags rewrites the sidecar alone, under the
//     store's commit lock: the ETag, LastModified and data stay, as in S3,
//     and a concurrent PutObject of the key is not lost (store.setTags).
//     x-amz-tagging ("k1=v1&k2=v2", URL-encoded) is taken by PutObject,
//     CreateMultipartUpload (applied at Complete) and CopyObject under
//     x-amz-tagging-directive REPLACE; COPY, the default, copies the
//     source's tags; UploadPartCopy ignores tags, as S3. GetObject and
//     HeadObject answer x-amz-tagging-count for an object with tags. The
//     aws CLI v2 reads a source's tags (GetObjectTagging) before a
//     multipart copy (aws s3 cp of objects above 8 MB) and passes them to
//     CreateMultipartUpload.
//   - ListMultipartUploads: prefix, delimiter, max-uploads, key-marker and
//     upload-id-marker, encoding-type=url; uploads sorted by key, then by
//     initiation (upload ids begin with their creation time, so S3's
//     lexicographic upload-id-marker and that order agree).
//
// Every request is SigV4-verified (header or presigned) for service "s3";
// Authorizer.Lookup resolves the access key (root or session credential)
// and Authorizer.Allow decides per operation, bucket and key, before any
// body byte is read, with one exception: DeleteObjects names its keys in
// its body, so it is read first (bounded, verified caller) and each key is
// authorized with Delete; a key refused gets an AccessDenied entry while
// the others are deleted, as in S3, and a request with no key the caller
// may delete is refused whole (AccessDenied, before the bucket's existence
// is looked at). GetObjectTagging needs Read on its object,
// PutObjectTagging and DeleteObjectTagging Write on it, so a job
// credential reads the tags of its inputs and sets those of its outputs.
// CopyObject needs Write on its destination (checked first) and Read on
// its source (whose tags it copies by default), and so does
// UploadPartCopy (its destination is the upload's key, as for UploadPart);
// ListMultipartUploads needs List on the bucket, like ListObjectsV2 (it
// reveals the keys being written). See Op for the operation each request
// is authorized as.
//
// Bodies may be plain (signed hex SHA-256, checked while streaming, or
// UNSIGNED-PAYLOAD) or aws-chunked:
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] (every chunk signature, and
// the trailer signature, checked against the chain seeded by the request
// signature) and STREAMING-UNSIGNED-PAYLOAD-TRAILER. Content-MD5 and
// x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}, as headers or
// trailers, are verified. Nothing is committed until the whole body has
// been read and every check passed.
//
// # Storage
//
// See store.go for the layout. Keys never become paths: an object lives
// under the hex SHA-256 of its key, with a JSON sidecar holding the key,
// ETag (MD5 hex), Content-Type, x-amz-meta-*, checksums and tags. Writes go to a
// temp file that is fsynced and renamed; the sidecar's rename is the commit
// point, so no reader sees a half-written object. Objects are streamed, never
// held in memory.
//
// # Abandoned multipart uploads
//
// An upload that is never completed or aborted (its worker crashed) keeps
// its parts on disk until Handler.SweepUploads removes it: every upload
// initiated before a cutoff, and every upload directory without a
// readable upload.json (a crash during CreateMultipartUpload) last
// modified before it. Handler.RunUploadSweeper sweeps at start and then
// periodically, with a maximum age, and logs how many it removed. Its
// UploadPart, UploadPartCopy, ListParts, CompleteMultipartUpload and
// AbortMultipartUpload then answer NoSuchUpload. A per-upload lock keeps a sweep off an upload
// a request is working on, so a CompleteMultipartUpload racing a sweep
// either commits its whole object or answers NoSuchUpload; the removal is
// a rename out of uploads/, so an upload vanishes whole. The locks are in
// memory: like the rest of the store, it assumes one process owns its
// directory (see sweep.go).
package s3api
