// Package oidc makes pipelined an OpenID Connect issuer: it keeps the
// signing keys, signs and verifies JWTs, and serves the discovery document
// and the JWKS that relying parties (AWS IAM, GCP workload identity,
// go-oidc) fetch to verify pipelined's tokens. Dex's signer is the model.
//
// # Key set
//
// The keys live in the store as one document (store.SigningKeys), so that
// every replica on one database signs with the same key and publishes the
// same JWKS. The document holds:
//
//   - the signing key, which signs every token until the next rotation;
//   - the next key, generated one rotation period in advance;
//   - the verification keys: former signing keys, each with the time until
//     which it stays published;
//   - the time of the next rotation.
//
// Private keys (signing and next) are stored as PKCS #8 sealed with the
// server's master key (package secrets), with the key's kid as the sealing
// context, so that the database alone never reveals them and a sealed key
// copied under another kid does not open. A retired key's private half is
// dropped: nothing signs with it again.
//
// # Why a next key
//
// A verifier that caches the JWKS (every cloud provider does, for minutes
// or hours) rejects a token whose kid it has not seen, or at best fetches
// the JWKS again on the request path. Publishing the next key one full
// rotation period before it signs gives every cache, and every replica
// (which reload the document every ReloadInterval), time to learn it, so a
// rotation is invisible to them. The Cache-Control max-age of the JWKS
// (see Handler) is kept far below the rotation period for the same reason.
//
// # Retention rule
//
// When a key stops signing at time t, tokens it signed live until at most
// t + MaxTokenTTL (Sign refuses longer-lived claims). The key therefore
// stays published until t + MaxTokenTTL + RetentionMargin; the margin
// covers clock skew between replicas and verifiers, the Leeway allowed on
// a token's exp when it was signed, and a replica that keeps signing with
// the old key until it reloads after a forced rotation (at most
// ReloadInterval). Expired verification keys are dropped at the next
// rotation, so a key may stay published longer, never shorter.
//
// # Rotation and replicas
//
// Every change of the key set is a compare-and-swap on the document's
// version (store.SigningKeyStore.SwapSigningKeys). Replicas that find a
// rotation due at the same moment each build the next document from the
// version they read; one swap wins and the others get store.ErrConflict,
// reload, and use what the winner stored: a stored key set is never
// overwritten, so a key that has been published is never lost. Creating
// the first key set is the same swap from version 0.
//
// No replica signs with a key past its signing window: Sign checks the
// cached rotation time (a clock read, no store round trip) and, once it
// has passed, reloads the document and rotates when nobody else has before
// signing. Between rotations Sign touches only memory: the decoded key set
// is cached with a ready jose.Signer, and a private key is decrypted once,
// when it becomes the signing key.
package oidc
