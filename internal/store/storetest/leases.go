package storetest

import (
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var leaseTests = []testCase{
	{"LeaseExclusive", testLeaseExclusive},
	{"LeaseRenew", testLeaseRenew},
	{"LeaseTakeoverAfterExpiry", testLeaseTakeoverAfterExpiry},
	{"LeaseRelease", testLeaseRelease},
}

func acquire(t *testing.T, st store.Store, name, holder string, ttl time.Duration) bool {
	t.Helper()
	ok, err := st.AcquireLease(t.Context(), name, holder, ttl)
	noErr(t, "AcquireLease("+name+", "+holder+")", err)
	return ok
}

// testLeaseExclusive: one holder at a time, across handles, per name.
func testLeaseExclusive(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	if !acquire(t, a, "leader", "r1", time.Minute) {
		t.Fatal("AcquireLease of a free lease = false")
	}
	if acquire(t, b, "leader", "r2", time.Minute) {
		t.Fatal("second holder acquired a held lease")
	}
	if acquire(t, a, "leader", "r2", time.Minute) {
		t.Fatal("second holder acquired a held lease through the holder's handle")
	}
	// Names are independent.
	if !acquire(t, b, "other", "r2", time.Minute) {
		t.Fatal("AcquireLease of another, free lease = false")
	}
	// Still r1's after all that.
	if !acquire(t, b, "leader", "r1", time.Minute) {
		t.Fatal("holder could not renew through another handle")
	}
}

// testLeaseRenew: renewing extends the lease from the renewal on.
func testLeaseRenew(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	const ttl = 2 * leaseTTL
	if !acquire(t, a, "leader", "r1", ttl) {
		t.Fatal("AcquireLease of a free lease = false")
	}
	time.Sleep(ttl / 2)
	renewStart := time.Now()
	if !acquire(t, a, "leader", "r1", ttl) {
		t.Fatal("holder could not renew its lease")
	}
	// Past the first expiry, but before the renewed one.
	time.Sleep(time.Until(renewStart.Add(ttl * 3 / 4)))
	got := acquire(t, b, "leader", "r2", ttl)
	if time.Since(renewStart) >= ttl {
		t.Skip("machine too slow for this timing test")
	}
	if got {
		t.Fatal("another holder took the lease before the renewed expiry")
	}
}

func testLeaseTakeoverAfterExpiry(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	if !acquire(t, a, "leader", "r1", leaseTTL) {
		t.Fatal("AcquireLease of a free lease = false")
	}
	acquired := time.Now()
	// The lease ends by acquired+leaseTTL.
	time.Sleep(time.Until(acquired.Add(leaseTTL + 20*time.Millisecond)))
	if !acquire(t, b, "leader", "r2", time.Minute) {
		t.Fatal("AcquireLease of an expired lease = false")
	}
	if acquire(t, a, "leader", "r1", time.Minute) {
		t.Fatal("the former holder took back a lease another holder renewed")
	}
}

func testLeaseRelease(t *testing.T, s *suite) {
	a, b := s.openPair(t)
	ctx := t.Context()
	if !acquire(t, a, "leader", "r1", time.Minute) {
		t.Fatal("AcquireLease of a free lease = false")
	}
	// Releasing a lease one does not hold does nothing.
	noErr(t, "ReleaseLease by a non-holder", b.ReleaseLease(ctx, "leader", "r2"))
	noErr(t, "ReleaseLease of an unknown lease", b.ReleaseLease(ctx, "unknown", "r2"))
	if acquire(t, b, "leader", "r2", time.Minute) {
		t.Fatal("a non-holder's ReleaseLease freed the lease")
	}
	// The holder's release frees it at once.
	noErr(t, "ReleaseLease", a.ReleaseLease(ctx, "leader", "r1"))
	if !acquire(t, b, "leader", "r2", time.Minute) {
		t.Fatal("AcquireLease after release = false")
	}
	noErr(t, "ReleaseLease of a lease no longer held", a.ReleaseLease(ctx, "leader", "r1"))
	if acquire(t, a, "leader", "r1", time.Minute) {
		t.Fatal("a former holder's ReleaseLease freed the new holder's lease")
	}
}
