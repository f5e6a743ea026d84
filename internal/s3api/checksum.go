package s3api

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"strings"
)

// crc64NVME is the CRC-64/NVME table (reflected polynomial), which S3 uses
// for x-amz-checksum-crc64nvme.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

var crc32cTable = crc32.MakeTable(crc32.Castagnoli)

// checksumAlgos are the flexible-checksum algorithms S3 knows, by their
// lower-case names as they appear in x-amz-checksum-<name>.
var checksumAlgos = map[string]func() hash.Hash{
	"crc32":     func() hash.Hash { return crc32.NewIEEE() },
	"crc32c":    func() hash.Hash { return crc32.New(crc32cTable) },
	"crc64nvme": func() hash.Hash { return crc64.New(crc64NVME) },
	"sha1":      sha1.New,
	"sha256":    sha256.New,
}

// checksumHeader is the header (or trailer) name that carries algo's value.
func checksumHeader(algo string) string { return "x-amz-checksum-" + algo }

// checksumAlgoOf returns the algorithm named by a header or trailer name
// ("x-amz-checksum-crc32"), or "".
func checksumAlgoOf(name string) string {
	name = strings.ToLower(name)
	a, ok := strings.CutPrefix(name, "x-amz-checksum-")
	if !ok {
		return ""
	}
	if _, known := checksumAlgos[a]; !known {
		return ""
	}
	return a
}

func sumBase64(h hash.Hash) string { return base64.StdEncoding.EncodeToString(h.Sum(nil)) }
