// Zip archives and CRC32 for the compatibility test: fflate builds and
// reads the archives, node:zlib computes S3's CRC32.

import { crc32 } from "node:zlib";
import { strFromU8, strToU8, unzipSync, zipSync } from "fflate";

/** The base64 of the big-endian CRC32, as S3's x-amz-checksum-crc32. */
export function crc32Base64(buf) {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32(buf));
  return out.toString("base64");
}

/** makeZip({name: content}) returns a deflated zip archive with fixed timestamps, so the same files give the same bytes. */
export function makeZip(files) {
  const entries = {};
  for (const name of Object.keys(files).sort()) entries[name] = strToU8(files[name]);
  return Buffer.from(zipSync(entries, { level: 6, mtime: new Date("2026-01-01T00:00:00Z") }));
}

/** readZip(buffer) returns {name: content} of the archive's files (UTF-8). */
export function readZip(buf) {
  const out = {};
  for (const [name, data] of Object.entries(unzipSync(new Uint8Array(buf)))) {
    if (!name.endsWith("/")) out[name] = strFromU8(data);
  }
  return out;
}
