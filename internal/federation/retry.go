package federation

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// Backoff strategy types, as Harness names them in retryPolicy.backOffStrategyType.
const (
	StrategyFixedDelay  = "FixedDelayBackoffStrategy"
	StrategyEqualJitter = "EqualJitterBackoffStrategy"
	StrategyFullJitter  = "FullJitterBackoffStrategy"
)

// Limits of a retry policy. A caller of the credentials API chooses its
// own policy, so the server bounds what one request can cost it: every
// retry is another call to the cloud provider on the caller's behalf, and
// a delay longer than DefaultMaxTotal could never be slept anyway.
const (
	// MaxRetryCount is the largest retryCount accepted.
	MaxRetryCount = 10
	// MaxDelay is the largest fixedBackoff, baseDelay and maxBackoffTime
	// accepted.
	MaxDelay = 30 * time.Second
	// DefaultMaxTotal bounds the total time of one provider call including
	// its retries, unless the client sets MaxTotal.
	DefaultMaxTotal = 30 * time.Second
)

// RetryPolicyJSON is Harness's retryPolicy object of a token request:
// the strategy's type and its parameters, whose shape depends on the type.
type RetryPolicyJSON struct {
	BackOffStrategyType string          `json:"backOffStrategyType"`
	BackOffStrategy     json.RawMessage `json:"backOffStrategy"`
}

// RetryPolicy is a parsed retry policy. The zero RetryPolicy makes one
// attempt and never retries.
type RetryPolicy struct {
	// Strategy is one of the Strategy constants ("" for no retries).
	Strategy string
	// FixedBackoff is the delay between attempts of StrategyFixedDelay.
	FixedBackoff time.Duration
	// BaseDelay and MaxBackoffTime shape the exponential delays of the
	// jitter strategies: retry n waits (a random part of)
	// min(MaxBackoffTime, BaseDelay*2^(n-1)). MaxBackoffTime <= 0 means
	// no cap.
	BaseDelay, MaxBackoffTime time.Duration
	// RetryCount is how many times a retryable failure is retried; the
	// call makes at most RetryCount+1 attempts.
	RetryCount int
}

// FieldError is one problem with a request field.
type FieldError struct {
	// Field is the JSON path of the field, e.g.
	// "retryPolicy.backOffStrategy.retryCount".
	Field string
	// Message says which constraint the value breaks.
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// strategyFields are the fields each strategy's backOffStrategy accepts.
var strategyFields = map[string][]string{
	StrategyFixedDelay:  {"fixedBackoff", "retryCount"},
	StrategyEqualJitter: {"baseDelay", "maxBackoffTime", "retryCount"},
	StrategyFullJitter:  {"baseDelay", "maxBackoffTime", "retryCount"},
}

// ParseRetryPolicy checks a request's retryPolicy and converts it. A nil
// policy, or one with neither a type nor parameters (absent, null or {}),
// means no retries.
// Durations are whole milliseconds. Within backOffStrategy, an omitted
// field is zero, except maxBackoffTime, which defaults to MaxDelay. All
// problems are reported, each naming its field:
//   - backOffStrategyType not one of the three Harness strategies;
//   - backOffStrategy not an object, or with a field the strategy does not
//     have (a misspelt field would otherwise silently become zero);
//   - a value that is not a whole number, is negative, or is above its cap
//     (retryCount <= MaxRetryCount, delays <= MaxDelay);
//   - maxBackoffTime below baseDelay, which would cap every delay below
//     the base delay.
func ParseRetryPolicy(p *RetryPolicyJSON) (RetryPolicy, []FieldError) {
	const prefix = "retryPolicy."
	if p == nil {
		return RetryPolicy{}, nil
	}
	raw := bytes.TrimSpace(p.BackOffStrategy)
	absent := len(raw) == 0 || string(raw) == "null"
	if p.BackOffStrategyType == "" {
		// Harness's request template carries "backOffStrategy": {}; with
		// no type, that means no policy.
		var m map[string]json.RawMessage
		if absent || (json.Unmarshal(raw, &m) == nil && m != nil && len(m) == 0) {
			return RetryPolicy{}, nil
		}
		return RetryPolicy{}, []FieldError{{prefix + "backOffStrategyType", "is required with backOffStrategy; must be one of " + strategyList()}}
	}
	allowed, ok := strategyFields[p.BackOffStrategyType]
	if !ok {
		return RetryPolicy{}, []FieldError{{prefix + "backOffStrategyType", fmt.Sprintf("unknown strategy %q; must be one of %s", p.BackOffStrategyType, strategyList())}}
	}
	if absent {
		return RetryPolicy{}, []FieldError{{prefix + "backOffStrategy", "is required for " + p.BackOffStrategyType}}
	}
	var fields map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &fields) != nil {
		return RetryPolicy{}, []FieldError{{prefix + "backOffStrategy", "must be a JSON object"}}
	}

	var errs []FieldError
	var unknown []string
	for name := range fields {
		if !contains(allowed, name) {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		errs = append(errs, FieldError{prefix + "backOffStrategy." + name, fmt.Sprintf("unknown field for %s; allowed fields are %s", p.BackOffStrategyType, strings.Join(allowed, ", "))})
	}

	// field parses one whole, non-negative number no larger than max.
	field := func(name string, max int64, unit string) (int64, bool) {
		v, ok := fields[name]
		if !ok || !contains(allowed, name) {
			return 0, false
		}
		path := prefix + "backOffStrategy." + name
		n, err := wholeNumber(v)
		switch {
		case err != nil:
			errs = append(errs, FieldError{path, err.Error()})
		case n < 0:
			errs = append(errs, FieldError{path, "must not be negative"})
		case n > max:
			errs = append(errs, FieldError{path, fmt.Sprintf("must be at most %d%s", max, unit)})
		default:
			return n, true
		}
		return 0, false
	}
	maxMS := MaxDelay.Milliseconds()
	pol := RetryPolicy{Strategy: p.BackOffStrategyType}
	if n, ok := field("retryCount", MaxRetryCount, ""); ok {
		pol.RetryCount = int(n)
	}
	if n, ok := field("fixedBackoff", maxMS, " milliseconds"); ok {
		pol.FixedBackoff = time.Duration(n) * time.Millisecond
	}
	if n, ok := field("baseDelay", maxMS, " milliseconds"); ok {
		pol.BaseDelay = time.Duration(n) * time.Millisecond
	}
	if p.BackOffStrategyType != StrategyFixedDelay {
		pol.MaxBackoffTime = MaxDelay
		if _, given := fields["maxBackoffTime"]; given {
			pol.MaxBackoffTime = 0
			if n, ok := field("maxBackoffTime", maxMS, " milliseconds"); ok {
				pol.MaxBackoffTime = time.Duration(n) * time.Millisecond
				if pol.MaxBackoffTime < pol.BaseDelay {
					errs = append(errs, FieldError{prefix + "backOffStrategy.maxBackoffTime", fmt.Sprintf("must be at least baseDelay (%d)", pol.BaseDelay.Milliseconds())})
				}
			}
		}
	}
	if len(errs) > 0 {
		return RetryPolicy{}, errs
	}
	return pol, nil
}

// wholeNumber parses a JSON number without a fractional part.
func wholeNumber(v json.RawMessage) (int64, error) {
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return 0, fmt.Errorf("must be a number")
	}
	num, ok := x.(json.Number)
	if !ok {
		return 0, fmt.Errorf("must be a number")
	}
	if n, err := num.Int64(); err == nil {
		return n, nil
	}
	f, err := num.Float64()
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("is out of range")
	}
	if f != math.Trunc(f) {
		return 0, fmt.Errorf("must be a whole number")
	}
	// A whole number in exponent form (1e3) or too large for int64.
	if f > math.MaxInt64/2 || f < math.MinInt64/2 {
		if f < 0 {
			return -1, nil
		}
		return math.MaxInt64, nil
	}
	return int64(f), nil
}

func strategyList() string {
	return StrategyFixedDelay + ", " + StrategyEqualJitter + " or " + StrategyFullJitter
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Delay is the delay before retry number attempt (1 for the first retry).
// rnd returns a number in [0, 1) (math/rand/v2's Float64 when nil):
//   - fixed delay: FixedBackoff;
//   - equal jitter: with c = min(MaxBackoffTime, BaseDelay*2^(attempt-1)),
//     c/2 plus a random part of c/2, so in [c/2, c];
//   - full jitter: a random part of c, so in [0, c].
//
// Full jitter spreads clients that failed together the most; equal jitter
// keeps a guaranteed minimum wait.
func (p RetryPolicy) Delay(attempt int, rnd func() float64) time.Duration {
	if rnd == nil {
		rnd = rand.Float64
	}
	if attempt < 1 {
		attempt = 1
	}
	switch p.Strategy {
	case StrategyFixedDelay:
		return max(p.FixedBackoff, 0)
	case StrategyEqualJitter:
		c := p.ceiling(attempt)
		half := c / 2
		return half + scale(c-half, rnd())
	case StrategyFullJitter:
		return scale(p.ceiling(attempt), rnd())
	}
	return 0
}

// ceiling is min(MaxBackoffTime, BaseDelay*2^(attempt-1)), without
// overflowing.
func (p RetryPolicy) ceiling(attempt int) time.Duration {
	d := max(p.BaseDelay, 0)
	limit := p.MaxBackoffTime
	if limit <= 0 {
		limit = math.MaxInt64
	}
	for i := 1; i < attempt && d < limit && d > 0; i++ {
		if d > math.MaxInt64/2 {
			d = math.MaxInt64
			break
		}
		d *= 2
	}
	return min(d, limit)
}

// scale is the fraction f (clamped to [0, 1]) of d.
func scale(d time.Duration, f float64) time.Duration {
	if f <= 0 || d <= 0 {
		return 0
	}
	if f >= 1 {
		return d
	}
	// float64 rounds large durations up; never go past d (converting a
	// float beyond MaxInt64 back would overflow).
	x := float64(d) * f
	if x >= float64(d) {
		return d
	}
	return time.Duration(x)
}

// caller runs one provider call under a retry policy.
type caller struct {
	maxTotal time.Duration
	sleep    func(context.Context, time.Duration) error
	// now and rnd are time.Now and rand.Float64 outside tests.
	now func() time.Time
	rnd func() float64
}

func newCaller(maxTotal time.Duration, sleep func(context.Context, time.Duration) error, now func() time.Time, rnd func() float64) caller {
	if maxTotal <= 0 {
		maxTotal = DefaultMaxTotal
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	if now == nil {
		now = time.Now
	}
	return caller{maxTotal: maxTotal, sleep: sleep, now: now, rnd: rnd}
}

// sleepCtx waits d, or less when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run calls attempt until it succeeds, fails in a way that is not
// retryable, or the policy's retries are used up. The whole call, sleeps
// included, is bounded by maxTotal and ctx; a delay that would end past
// either bound is not slept, since the attempt after it could not finish
// in time anyway. The returned error is the last attempt's, with Attempts
// set.
func (c caller) run(ctx context.Context, policy RetryPolicy, attempt func(context.Context) *ProviderError) error {
	start := c.now()
	ctx, cancel := context.WithTimeout(ctx, c.maxTotal)
	defer cancel()
	for n := 1; ; n++ {
		perr := attempt(ctx)
		if perr == nil {
			return nil
		}
		perr.Attempts = n
		if ctx.Err() != nil {
			// The call's own deadline or the caller's cancellation: not a
			// failure of the provider that another attempt could fix.
			perr.Retryable = false
		}
		if !perr.Retryable || n > policy.RetryCount {
			return perr
		}
		d := policy.Delay(n, c.rnd)
		if c.now().Sub(start)+d >= c.maxTotal {
			return perr
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
			return perr
		}
		if err := c.sleep(ctx, d); err != nil {
			return perr
		}
	}
}
