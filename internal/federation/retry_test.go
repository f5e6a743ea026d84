package federation

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRetryPolicy(t *testing.T) {
	ms := time.Millisecond
	valid := []struct {
		name string
		in   *RetryPolicyJSON
		want RetryPolicy
	}{
		{"nil", nil, RetryPolicy{}},
		{"empty", &RetryPolicyJSON{}, RetryPolicy{}},
		{"empty with null strategy", &RetryPolicyJSON{BackOffStrategy: json.RawMessage("null")}, RetryPolicy{}},
		{"empty with empty strategy", &RetryPolicyJSON{BackOffStrategy: json.RawMessage(" {} ")}, RetryPolicy{}},
		{"fixed", &RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"fixedBackoff": 500, "retryCount": 3}`)},
			RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 500 * ms, RetryCount: 3}},
		{"fixed exponent form", &RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"fixedBackoff": 1e3, "retryCount": 1.0}`)},
			RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: time.Second, RetryCount: 1}},
		{"equal jitter", &RetryPolicyJSON{StrategyEqualJitter, json.RawMessage(`{"baseDelay": 100, "maxBackoffTime": 2000, "retryCount": 10}`)},
			RetryPolicy{Strategy: StrategyEqualJitter, BaseDelay: 100 * ms, MaxBackoffTime: 2 * time.Second, RetryCount: 10}},
		{"full jitter at the caps", &RetryPolicyJSON{StrategyFullJitter, json.RawMessage(`{"baseDelay": 30000, "maxBackoffTime": 30000, "retryCount": 10}`)},
			RetryPolicy{Strategy: StrategyFullJitter, BaseDelay: MaxDelay, MaxBackoffTime: MaxDelay, RetryCount: 10}},
		{"full jitter, maxBackoffTime omitted", &RetryPolicyJSON{StrategyFullJitter, json.RawMessage(`{"baseDelay": 200, "retryCount": 2}`)},
			RetryPolicy{Strategy: StrategyFullJitter, BaseDelay: 200 * ms, MaxBackoffTime: MaxDelay, RetryCount: 2}},
		{"zeros", &RetryPolicyJSON{StrategyFullJitter, json.RawMessage(`{"baseDelay": 0, "maxBackoffTime": 0, "retryCount": 0}`)},
			RetryPolicy{Strategy: StrategyFullJitter}},
		{"empty object", &RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{}`)},
			RetryPolicy{Strategy: StrategyFixedDelay}},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := ParseRetryPolicy(tc.in)
			if len(errs) > 0 {
				t.Fatalf("errors %v", errs)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	const s = "retryPolicy.backOffStrategy."
	invalid := []struct {
		name string
		in   RetryPolicyJSON
		want []FieldError // Message: a substring
	}{
		{"unknown type", RetryPolicyJSON{"ExponentialBackoffStrategy", json.RawMessage(`{"retryCount": 1}`)},
			[]FieldError{{"retryPolicy.backOffStrategyType", "unknown strategy"}}},
		{"type in lower case", RetryPolicyJSON{"fixeddelaybackoffstrategy", json.RawMessage(`{}`)},
			[]FieldError{{"retryPolicy.backOffStrategyType", "must be one of"}}},
		{"parameters without type", RetryPolicyJSON{"", json.RawMessage(`{"retryCount": 1}`)},
			[]FieldError{{"retryPolicy.backOffStrategyType", "is required"}}},
		{"type without parameters", RetryPolicyJSON{StrategyFixedDelay, nil},
			[]FieldError{{"retryPolicy.backOffStrategy", "is required"}}},
		{"parameters not an object", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`[1, 2]`)},
			[]FieldError{{"retryPolicy.backOffStrategy", "must be a JSON object"}}},
		{"negative retryCount", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"retryCount": -1}`)},
			[]FieldError{{s + "retryCount", "must not be negative"}}},
		{"retryCount above the cap", RetryPolicyJSON{StrategyFullJitter, json.RawMessage(`{"baseDelay": 10, "retryCount": 11}`)},
			[]FieldError{{s + "retryCount", "at most 10"}}},
		{"huge retryCount", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"retryCount": 1e300}`)},
			[]FieldError{{s + "retryCount", "at most 10"}}},
		{"fractional retryCount", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"retryCount": 1.5}`)},
			[]FieldError{{s + "retryCount", "whole number"}}},
		{"string retryCount", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"retryCount": "3"}`)},
			[]FieldError{{s + "retryCount", "must be a number"}}},
		{"fixedBackoff above the cap", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"fixedBackoff": 30001}`)},
			[]FieldError{{s + "fixedBackoff", "at most 30000 milliseconds"}}},
		{"negative baseDelay", RetryPolicyJSON{StrategyEqualJitter, json.RawMessage(`{"baseDelay": -100, "maxBackoffTime": 1000}`)},
			[]FieldError{{s + "baseDelay", "must not be negative"}}},
		{"maxBackoffTime above the cap", RetryPolicyJSON{StrategyEqualJitter, json.RawMessage(`{"baseDelay": 100, "maxBackoffTime": 60000}`)},
			[]FieldError{{s + "maxBackoffTime", "at most 30000"}}},
		{"maxBackoffTime below baseDelay", RetryPolicyJSON{StrategyFullJitter, json.RawMessage(`{"baseDelay": 100, "maxBackoffTime": 50}`)},
			[]FieldError{{s + "maxBackoffTime", "at least baseDelay"}}},
		{"unknown field", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"fixedBackoff": 10, "retries": 3}`)},
			[]FieldError{{s + "retries", "unknown field"}}},
		{"misspelt case", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"RetryCount": 3}`)},
			[]FieldError{{s + "RetryCount", "unknown field"}}},
		{"field of another strategy", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"baseDelay": 10}`)},
			[]FieldError{{s + "baseDelay", "unknown field for FixedDelayBackoffStrategy"}}},
		{"fixedBackoff for jitter", RetryPolicyJSON{StrategyFullJitter, json.RawMessage(`{"fixedBackoff": 10}`)},
			[]FieldError{{s + "fixedBackoff", "unknown field"}}},
		{"every problem reported", RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"retryCount": -1, "fixedBackoff": 99999, "b": 1, "a": 2}`)},
			[]FieldError{{s + "a", "unknown field"}, {s + "b", "unknown field"}, {s + "retryCount", "negative"}, {s + "fixedBackoff", "at most"}}},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := ParseRetryPolicy(&tc.in)
			if got != (RetryPolicy{}) {
				t.Errorf("an invalid policy parsed as %+v", got)
			}
			if len(errs) != len(tc.want) {
				t.Fatalf("errors %v, want %d: %v", errs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if errs[i].Field != w.Field || !strings.Contains(errs[i].Message, w.Message) {
					t.Errorf("error %d = %q: %q, want %q: ...%q...", i, errs[i].Field, errs[i].Message, w.Field, w.Message)
				}
			}
		})
	}
}

func TestDelayFixed(t *testing.T) {
	p := RetryPolicy{Strategy: StrategyFixedDelay, FixedBackoff: 700 * time.Millisecond, RetryCount: 10}
	for attempt := 1; attempt <= 10; attempt++ {
		for range 100 {
			if d := p.Delay(attempt, rand.Float64); d != 700*time.Millisecond {
				t.Fatalf("Delay(%d) = %v, want 700ms", attempt, d)
			}
		}
	}
}

// ceilingOf is min(max, base*2^(attempt-1)), computed independently of
// the code under test.
func ceilingOf(base, max time.Duration, attempt int) time.Duration {
	c := base
	for i := 1; i < attempt; i++ {
		c *= 2
		if c >= max {
			return max
		}
	}
	return min(c, max)
}

func TestDelayJitterBounds(t *testing.T) {
	base, maxB := 100*time.Millisecond, 2*time.Second
	for _, strategy := range []string{StrategyEqualJitter, StrategyFullJitter} {
		t.Run(strategy, func(t *testing.T) {
			p := RetryPolicy{Strategy: strategy, BaseDelay: base, MaxBackoffTime: maxB, RetryCount: 10}
			for attempt := 1; attempt <= 10; attempt++ {
				c := ceilingOf(base, maxB, attempt)
				lo := time.Duration(0)
				if strategy == StrategyEqualJitter {
					lo = c / 2
				}
				minSeen, maxSeen := c, time.Duration(0)
				for range 5000 {
					d := p.Delay(attempt, rand.Float64)
					if d < lo || d > c {
						t.Fatalf("Delay(%d) = %v, outside [%v, %v]", attempt, d, lo, c)
					}
					minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
				}
				// The draws cover the range: both ends within 5% of it.
				span := c - lo
				if minSeen > lo+span/20 || maxSeen < c-span/20 {
					t.Errorf("Delay(%d) draws span [%v, %v], want close to [%v, %v]", attempt, minSeen, maxSeen, lo, c)
				}
			}
		})
	}
}

func TestDelayExact(t *testing.T) {
	ms := time.Millisecond
	eq := RetryPolicy{Strategy: StrategyEqualJitter, BaseDelay: 100 * ms, MaxBackoffTime: 1000 * ms}
	full := RetryPolicy{Strategy: StrategyFullJitter, BaseDelay: 100 * ms, MaxBackoffTime: 1000 * ms}
	zero := func() float64 { return 0 }
	one := func() float64 { return 1 }
	cases := []struct {
		p       RetryPolicy
		attempt int
		rnd     func() float64
		want    time.Duration
	}{
		{eq, 1, zero, 50 * ms}, {eq, 1, one, 100 * ms}, {eq, 3, half, 300 * ms}, {eq, 5, zero, 500 * ms}, {eq, 9, one, 1000 * ms},
		{full, 1, zero, 0}, {full, 1, one, 100 * ms}, {full, 2, half, 100 * ms}, {full, 4, one, 800 * ms}, {full, 5, one, 1000 * ms},
		{RetryPolicy{}, 1, one, 0},
		// A hand-built policy without a cap does not overflow.
		{RetryPolicy{Strategy: StrategyFullJitter, BaseDelay: time.Second}, 200, one, 1<<63 - 1},
	}
	for _, c := range cases {
		if got := c.p.Delay(c.attempt, c.rnd); got != c.want {
			t.Errorf("%s Delay(%d, %v) = %v, want %v", c.p.Strategy, c.attempt, c.rnd(), got, c.want)
		}
	}
}

func TestFieldErrorText(t *testing.T) {
	_, errs := ParseRetryPolicy(&RetryPolicyJSON{StrategyFixedDelay, json.RawMessage(`{"retryCount": 50}`)})
	want := []FieldError{{"retryPolicy.backOffStrategy.retryCount", "must be at most 10"}}
	if !reflect.DeepEqual(errs, want) {
		t.Fatalf("got %v, want %v", errs, want)
	}
	if errs[0].Error() != "retryPolicy.backOffStrategy.retryCount: must be at most 10" {
		t.Fatalf("Error() = %q", errs[0].Error())
	}
}
