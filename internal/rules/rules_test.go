package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/wire"
)

func TestCheck(t *testing.T) {
	cases := []struct {
		op         Operator
		variable   string
		value      string
		want       bool
		wantErrSub string
	}{
		{OpEQ, "main", "main", true, ""},
		{OpEQ, "main", "dev", false, ""},
		{OpNE, "main", "dev", true, ""},
		{OpNE, "main", "main", false, ""},
		{OpContains, "fix: update readme", "update", true, ""},
		{OpContains, "fix", "update", false, ""},
		{OpMatches, "release-1.2", `release-\d+\.\d+`, true, ""},
		{OpMatches, "xrelease-1.2", `release-\d+\.\d+`, false, ""}, // whole value, as Java's matches
		{OpMatches, "a", `(`, false, "not a valid regular expression"},
		{OpGreaterThan, "10", "9", true, ""},
		{OpGreaterThan, "9", "10", false, ""}, // numbers, not strings
		{OpLessThan, "1.5", "2", true, ""},
		{OpLessThan, "abc", "2", false, "is not a number"},
		{OpGreaterThan, "1", "NaN", false, "is not a number"},
	}
	for _, c := range cases {
		got, err := Check(c.op, c.variable, c.value)
		if c.wantErrSub != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErrSub) {
				t.Errorf("%s(%q, %q): err %v, want %q", c.op, c.variable, c.value, err, c.wantErrSub)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s(%q, %q) = %v, %v; want %v", c.op, c.variable, c.value, got, err, c.want)
		}
	}
	if _, err := ParseOperator("GT"); err == nil {
		t.Error("operator GT accepted")
	}
}

func TestWindow(t *testing.T) {
	// Weekdays (MON-FRI) 09:00-17:59 in New York.
	w, err := ParseWindow("* * 9-17 ? * MON-FRI *", "America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	sat := time.Date(2026, 12, 5, 10, 0, 0, 0, ny) // a Saturday
	if w.Open(sat) {
		t.Error("open on a Saturday")
	}
	next, ok := w.Next(sat)
	if want := time.Date(2026, 12, 7, 9, 0, 0, 0, ny); !ok || !next.Equal(want) {
		t.Errorf("Next(Saturday) = %v, want %v", next, want)
	}
	if !w.Open(time.Date(2026, 12, 7, 17, 59, 30, 0, ny)) {
		t.Error("closed on Monday 17:59")
	}
	if w.Open(time.Date(2026, 12, 7, 18, 0, 0, 0, ny)) {
		t.Error("open on Monday 18:00")
	}
	// AWS numbers days 1-7 from Sunday: 2 is Monday.
	w2, err := ParseWindow("* 0 12 ? * 2", "")
	if err != nil {
		t.Fatal(err)
	}
	if !w2.Open(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)) || w2.Open(time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)) {
		t.Error("day-of-week 2 is not Monday")
	}
	// The year field.
	w3, err := ParseWindow("* * * * * ? 2028", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := w3.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); !ok || !n.Equal(time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Next with year 2028 = %v %v", n, ok)
	}
	if _, ok := w3.Next(time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)); ok {
		t.Error("a window of 2028 opens after 2028")
	}
	// Month names containing L are names, not Quartz's L.
	if _, err := ParseWindow("* * * ? JUL SAT", ""); err != nil {
		t.Errorf("JUL SAT refused: %v", err)
	}
}

func TestParseWindowErrors(t *testing.T) {
	cases := map[string]struct{ expr, zone, want string }{
		"fields":     {"* * * * *", "", "has 5 fields"},
		"seconds":    {"5 * * ? * *", "", "seconds field"},
		"both days":  {"* * * 1 * MON", "", "one of them must be '?'"},
		"L":          {"* * * L * ?", "", "L, W or #"},
		"hash":       {"* * * ? * 6#3", "", "L, W or #"},
		"bad dow":    {"* * * ? * 8", "", "out of range"},
		"bad minute": {"* 61 * ? * *", "", "not a valid expression"},
		"year":       {"* * * ? * * 1900", "", "years must be within"},
		"zone":       {"* * * ? * *", "Mars/Olympus", "TimeZone"},
	}
	for name, c := range cases {
		_, err := ParseWindow(c.expr, c.zone)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseWindow(%q, %q) error %v, want %q", name, c.expr, c.zone, err, c.want)
		}
	}
}

func TestValidateRule(t *testing.T) {
	vc := func(cfg map[string]string) *wire.RuleDeclaration {
		return &wire.RuleDeclaration{Name: "r", RuleTypeId: &wire.RuleTypeId{Category: "Rule", Owner: "AWS", Provider: VariableCheck, Version: "1"}, Configuration: cfg}
	}
	if err := ValidateRule("f", vc(map[string]string{"Variable": "#{a.b}", "Value": "x", "Operator": "EQ"})); err != nil {
		t.Fatal(err)
	}
	for want, r := range map[string]*wire.RuleDeclaration{
		"needs the property 'Value'": vc(map[string]string{"Variable": "#{a.b}", "Operator": "EQ"}),
		"has no property 'Extra'":    vc(map[string]string{"Variable": "#{a.b}", "Value": "x", "Operator": "EQ", "Extra": "1"}),
		"f.configuration.Operator":   vc(map[string]string{"Variable": "#{a.b}", "Value": "x", "Operator": "GT"}),
		"does not exist":             {Name: "r", RuleTypeId: &wire.RuleTypeId{Category: "Rule", Owner: "AWS", Provider: "Nope", Version: "1"}},
	} {
		if err := ValidateRule("f", r); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	if err := ValidateResult("beforeEntry", "x", wire.ResultRollback); err == nil {
		t.Error("ROLLBACK accepted for beforeEntry")
	}
	if err := ValidateResult("onFailure", "x", wire.ResultRetry); err != nil {
		t.Error(err)
	}
}

func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"* * 9-17 ? * MON-FRI *", "* 0/15 * ? * 2-6", "* * * 1,15 * ? 2027-2030/2", "* * * L * ?", "0 0 0 ? JAN-DEC 1-7 *"} {
		f.Add(s, "UTC")
	}
	f.Add("* * * ? * *", "Europe/Paris")
	f.Fuzz(func(t *testing.T, expr, zone string) {
		w, err := ParseWindow(expr, zone)
		if err != nil {
			return
		}
		start := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
		if n, ok := w.Next(start); ok {
			if !n.After(start) {
				t.Fatalf("Next(%v) = %v, not after", start, n)
			}
			if !w.Open(n) {
				t.Fatalf("%q: window not open at its Next %v", expr, n)
			}
		}
	})
}

func FuzzCheck(f *testing.F) {
	for _, op := range []string{"EQ", "NE", "CONTAINS", "MATCHES", "GREATER_THAN", "LESS_THAN"} {
		f.Add(op, "10", "9")
		f.Add(op, "main", "ma.*")
	}
	f.Fuzz(func(t *testing.T, opS, variable, value string) {
		op, err := ParseOperator(opS)
		if err != nil {
			return
		}
		got, err := Check(op, variable, value)
		if err != nil {
			return
		}
		if op == OpEQ {
			if ne, _ := Check(OpNE, variable, value); ne == got {
				t.Fatalf("EQ and NE agree on %q %q", variable, value)
			}
		}
	})
}
