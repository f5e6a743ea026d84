package s3api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// On-disk layout, under the handler's directory:
//
//	buckets/<bucket>/                 one directory per bucket (names are
//	                                  validated: [a-z0-9.-], so safe as is)
//	buckets/<bucket>/.created         the bucket's creation time
//	buckets/<bucket>/<hh>/<h>.json    an object's metadata sidecar, where h is
//	                                  the hex SHA-256 of the key (so no key
//	                                  ever becomes a path) and hh its first
//	                                  two digits
//	buckets/<bucket>/<hh>/<h>.<rand>  the object's bytes, named by the sidecar
//	uploads/<id>/upload.json          a multipart upload in progress (id:
//	                                  creation time, then random; see
//	                                  newUploadID)
//	uploads/<id>/<n>, <n>.json        its parts and their metadata
//	tmp/                              files being written, and uploads
//	                                  being removed (renamed here first);
//	                                  emptied at start
//
// An object is replaced by writing its data to tmp/, renaming it to a fresh
// data name, then renaming a new sidecar over the old one: the rename of the
// sidecar is the commit point. Readers open the data file named by the
// sidecar they read, so they see the old object or the new, never a mix.
type store struct {
	root string
	mu   sync.Mutex // serializes commits (sidecar renames and cleanup)
}

// objMeta is an object's sidecar.
type objMeta struct {
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"` // without quotes
	ContentType string            `json:"contentType,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"` // Content-Encoding, Cache-Control, ...
	UserMeta    map[string]string `json:"meta,omitempty"`    // x-amz-meta-*, names lower-case without prefix
	Checksums   map[string]string `json:"checksums,omitempty"`
	Modified    time.Time         `json:"modified"`
	Data        string            `json:"data"` // data file name in the same directory
	Parts       int               `json:"parts,omitempty"`
	// Tags is the object's tag set (see tagging.go). It lives in the
	// sidecar, so it is committed with the object it belongs to, and a
	// PutObject (or CopyObject, CompleteMultipartUpload) replaces it with
	// the object: a new object has the tags its request gave, or none.
	Tags map[string]string `json:"tags,omitempty"`
}

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func validBucket(b string) bool {
	return bucketRE.MatchString(b) && !strings.Contains(b, "..")
}

// validKey accepts what S3 accepts, less what XML cannot carry: 1 to 1024
// bytes of UTF-8 without NUL. Keys never reach the file system as paths.
func validKey(k string) bool {
	return k != "" && len(k) <= 1024 && utf8.ValidString(k) && !strings.ContainsRune(k, 0)
}

func newStore(root string) (*store, error) {
	for _, d := range []string{"buckets", "uploads", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	// Leftovers of writes interrupted by a crash.
	if ents, err := os.ReadDir(filepath.Join(root, "tmp")); err == nil {
		for _, e := range ents {
			os.RemoveAll(filepath.Join(root, "tmp", e.Name()))
		}
	}
	return &store{root: root}, nil
}

func (s *store) bucketDir(b string) string { return filepath.Join(s.root, "buckets", b) }

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (s *store) objDir(b, key string) (dir, h string) {
	h = keyHash(key)
	return filepath.Join(s.bucketDir(b), h[:2]), h
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *store) bucketExists(b string) bool {
	if !validBucket(b) {
		return false
	}
	fi, err := os.Stat(s.bucketDir(b))
	return err == nil && fi.IsDir()
}

// createBucket reports false if the bucket already existed.
func (s *store) createBucket(b string) (bool, error) {
	err := os.Mkdir(s.bucketDir(b), 0o700)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	t, _ := time.Now().UTC().MarshalText()
	return true, os.WriteFile(filepath.Join(s.bucketDir(b), ".created"), t, 0o600)
}

type bucketInfo struct {
	Name    string
	Created time.Time
}

func (s *store) listBuckets() ([]bucketInfo, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "buckets"))
	if err != nil {
		return nil, err
	}
	var out []bucketInfo
	for _, e := range ents {
		if !e.IsDir() || !validBucket(e.Name()) {
			continue
		}
		bi := bucketInfo{Name: e.Name()}
		if t, err := os.ReadFile(filepath.Join(s.bucketDir(e.Name()), ".created")); err == nil {
			bi.Created.UnmarshalText(t)
		}
		out = append(out, bi)
	}
	return out, nil
}

// deleteBucket removes an empty bucket; it reports errBucketNotEmpty.
var errBucketNotEmpty = errors.New("bucket not empty")

func (s *store) deleteBucket(b string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ents, err := os.ReadDir(s.bucketDir(b))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			sub, _ := os.ReadDir(filepath.Join(s.bucketDir(b), e.Name()))
			for _, f := range sub {
				if strings.HasSuffix(f.Name(), ".json") {
					return errBucketNotEmpty
				}
			}
		}
	}
	return os.RemoveAll(s.bucketDir(b))
}

// head reads an object's sidecar; fs.ErrNotExist if there is none.
func (s *store) head(b, key string) (*objMeta, error) {
	dir, h := s.objDir(b, key)
	return readMeta(filepath.Join(dir, h+".json"))
}

func readMeta(path string) (*objMeta, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m objMeta
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("s3api: corrupt sidecar %s: %w", path, err)
	}
	return &m, nil
}

// open returns the object's metadata and its open data file (which stays
// readable if a later commit replaces and deletes it). Without a lock it
// reads the sidecar and opens the data file it names, and tries again if a
// concurrent replacement deleted that file in between; after a few such
// races (an object rewritten as fast as it is read) it takes the commit
// lock, under which the pair cannot change, so a reader always gets through.
func (s *store) open(b, key string) (*objMeta, *os.File, error) {
	for range 3 {
		m, f, err := s.openOnce(b, key)
		if !errors.Is(err, errReplaced) {
			return m, f, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openOnce(b, key)
}

// errReplaced: the data file a sidecar named was gone when opened.
var errReplaced = errors.New("s3api: object replaced while opened")

func (s *store) openOnce(b, key string) (*objMeta, *os.File, error) {
	m, err := s.head(b, key)
	if err != nil {
		return nil, nil, err
	}
	dir, _ := s.objDir(b, key)
	f, err := os.Open(filepath.Join(dir, filepath.Base(m.Data)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, errReplaced
	}
	if err != nil {
		return nil, nil, err
	}
	return m, f, nil
}

// tempFile creates a file in tmp/.
func (s *store) tempFile() (*os.File, error) {
	return os.CreateTemp(filepath.Join(s.root, "tmp"), "w-*")
}

// pendingFile is a file in tmp/ being written for a commit: removed by
// discard (deferred) unless finish synced and closed it for the caller.
type pendingFile struct {
	*os.File
	finished bool
}

// pending creates a pendingFile.
func (s *store) pending() (*pendingFile, error) {
	f, err := s.tempFile()
	if err != nil {
		return nil, err
	}
	return &pendingFile{File: f}, nil
}

// finish syncs and closes the file and returns its path: the caller now
// owns it (commits or removes it).
func (p *pendingFile) finish() (string, error) {
	if err := p.Sync(); err != nil {
		return "", err
	}
	if err := p.Close(); err != nil {
		return "", err
	}
	p.finished = true
	return p.Name(), nil
}

// discard removes the file unless finish succeeded.
func (p *pendingFile) discard() {
	if !p.finished {
		p.Close()
		os.Remove(p.Name())
	}
}

// commit makes the written, synced temp file at tmpPath the object m.Key.
func (s *store) commit(b string, tmpPath string, m *objMeta) error {
	dir, h := s.objDir(b, m.Key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	m.Data = h + "." + randHex(8)
	metaTmp, err := s.tempJSON(m)
	if err != nil {
		return err
	}
	defer os.Remove(metaTmp)

	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.bucketExists(b) { // deleted while we were writing
		return fs.ErrNotExist
	}
	if err := os.Rename(tmpPath, filepath.Join(dir, m.Data)); err != nil {
		return err
	}
	old, _ := readMeta(filepath.Join(dir, h+".json"))
	if err := os.Rename(metaTmp, filepath.Join(dir, h+".json")); err != nil {
		os.Remove(filepath.Join(dir, m.Data))
		return err
	}
	syncDir(dir)
	if old != nil && old.Data != "" && old.Data != m.Data {
		os.Remove(filepath.Join(dir, filepath.Base(old.Data)))
	}
	return nil
}

// tempJSON writes v as JSON to a synced temp file in tmp/ and returns its
// path; the caller renames it into place or removes it.
func (s *store) tempJSON(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	f, err := s.pending()
	if err != nil {
		return "", err
	}
	defer f.discard()
	if _, err := f.Write(raw); err != nil {
		return "", err
	}
	return f.finish()
}

// setTags replaces the tag set of an object (nil or empty: none) and
// returns its sidecar as written; fs.ErrNotExist if there is no object.
//
// Only the sidecar changes: the data file, ETag, LastModified and every
// other field are those of the object found, as S3 leaves an object's
// ETag and Last-Modified alone when its tags change. The whole
// read-modify-write runs under the commit lock (mu), so it cannot
// interleave with a commit or removal of the same key: either the new
// object is committed first and gets the tags, or the tags are set first
// and the new object then replaces them (as a PutObject replaces an
// object's tags in S3). Without the lock, an update that read the old
// sidecar could rename it, with its old data name, over the new object's
// sidecar after commit deleted the old data file: the new body would be
// lost and the key would name a missing file. The new sidecar is written
// to tmp/, synced and renamed over the old one, so readers (which take no
// lock) see the old sidecar or the new, both naming the same data file.
// The price is an fsync of a small file under the store-wide lock.
func (s *store) setTags(b, key string, tags map[string]string) (*objMeta, error) {
	dir, h := s.objDir(b, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := readMeta(filepath.Join(dir, h+".json"))
	if err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		tags = nil
	}
	if maps.Equal(m.Tags, tags) {
		return m, nil // nothing to write
	}
	m.Tags = tags
	tmp, err := s.tempJSON(m)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, filepath.Join(dir, h+".json")); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	syncDir(dir)
	return m, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// remove deletes an object; a missing one is not an error (S3 answers 204).
func (s *store) remove(b, key string) error { return s.removeIf(b, key, nil) }

// errConditionFailed: removeIf's condition did not hold.
var errConditionFailed = errors.New("condition failed")

// removeIf deletes an object if cond, when not nil, holds for its sidecar;
// otherwise (a missing object included) it returns errConditionFailed.
// The condition is checked under the commit lock, so no replacement of the
// object slips in between the check and the deletion.
func (s *store) removeIf(b, key string, cond func(*objMeta) bool) error {
	dir, h := s.objDir(b, key)
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := readMeta(filepath.Join(dir, h+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		if cond != nil {
			return errConditionFailed
		}
		return nil
	}
	if err != nil {
		return err
	}
	if cond != nil && !cond(m) {
		return errConditionFailed
	}
	if err := os.Remove(filepath.Join(dir, h+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	os.Remove(filepath.Join(dir, filepath.Base(m.Data)))
	return nil
}

// list returns the bucket's objects whose keys start with prefix, sorted.
// It reads every sidecar: fine for an artifact store's buckets, which hold
// thousands of objects, not millions.
func (s *store) list(b, prefix string) ([]*objMeta, error) {
	subs, err := os.ReadDir(s.bucketDir(b))
	if err != nil {
		return nil, err
	}
	var out []*objMeta
	for _, sub := range subs {
		if !sub.IsDir() {
			continue
		}
		dir := filepath.Join(s.bucketDir(b), sub.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !strings.HasSuffix(e.Name(), ".json") {
				continue
			}
			m, err := readMeta(filepath.Join(dir, e.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(m.Key, prefix) {
				out = append(out, m)
			}
		}
	}
	slices.SortFunc(out, func(a, b *objMeta) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
