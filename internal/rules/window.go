package rules

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // time zones resolve on machines without a zoneinfo database

	"github.com/robfig/cron/v3"
)

// Window is a DeploymentWindow: the minutes a cron expression matches, in a
// time zone.
//
// AWS takes Quartz-style expressions: six fields (seconds, minutes, hours,
// day of month, month, day of week) and an optional year. They are mapped
// onto robfig/cron's five standard fields:
//   - seconds must be '*' or '0' (AWS allows only '*'; a window is a set of
//     minutes);
//   - day of week 1-7 (1 = SUN) becomes 0-6; names (SUN-SAT) are kept;
//   - '?' means "no specific value", as in robfig/cron;
//   - the year field ('*', a year, a range or a list, 1970-2199) is checked
//     here, outside robfig/cron;
//   - Quartz's L, W and # are refused with a message saying so.
type Window struct {
	sched *cron.SpecSchedule
	loc   *time.Location
	years []yearRange // nil: every year
	expr  string
}

type yearRange struct{ from, to, step int }

const (
	minYear = 1970
	maxYear = 2199
	// maxExpr bounds an expression's length.
	maxExpr = 256
)

var fiveFields = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// ParseWindow parses a DeploymentWindow cron expression and time zone ("":
// UTC).
func ParseWindow(expr, zone string) (*Window, error) {
	if len(expr) > maxExpr {
		return nil, fmt.Errorf("Cron: the expression is longer than %d characters", maxExpr)
	}
	loc := time.UTC
	if zone != "" {
		l, err := time.LoadLocation(zone)
		if err != nil || strings.HasPrefix(zone, "/") || strings.Contains(zone, "..") || zone == "Local" {
			return nil, fmt.Errorf("TimeZone: '%s' is not a known time zone (use an IANA name such as America/New_York)", zone)
		}
		loc = l
	}
	f := strings.Fields(expr)
	if len(f) != 6 && len(f) != 7 {
		return nil, fmt.Errorf("Cron: '%s' has %d fields; a DeploymentWindow expression has 6 (seconds minutes hours day-of-month month day-of-week) and an optional year", expr, len(f))
	}
	if !onlyNames(f[3:6]) {
		return nil, fmt.Errorf("Cron: '%s' uses L, W or #, which pipelined does not support in DeploymentWindow expressions", expr)
	}
	if f[0] != "*" && f[0] != "0" {
		return nil, fmt.Errorf("Cron: the seconds field must be '*'; '%s' is not", f[0])
	}
	if f[3] != "?" && f[3] != "*" && f[5] != "?" && f[5] != "*" {
		return nil, fmt.Errorf("Cron: '%s' restricts both day-of-month and day-of-week; one of them must be '?'", expr)
	}
	dow, err := mapDow(f[5])
	if err != nil {
		return nil, fmt.Errorf("Cron: day-of-week '%s': %w", f[5], err)
	}
	s, err := fiveFields.Parse(strings.Join([]string{f[1], f[2], f[3], f[4], dow}, " "))
	if err != nil {
		return nil, fmt.Errorf("Cron: '%s' is not a valid expression: %v", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("Cron: '%s' is not a valid expression", expr)
	}
	spec.Location = loc
	w := &Window{sched: spec, loc: loc, expr: expr}
	if len(f) == 7 && f[6] != "*" {
		if w.years, err = parseYears(f[6]); err != nil {
			return nil, fmt.Errorf("Cron: year '%s': %w", f[6], err)
		}
	}
	return w, nil
}

// onlyNames reports whether the L, W or # letters in the day fields are
// only parts of month or day names (JUL, WED, SAT...).
func onlyNames(fields []string) bool {
	for _, f := range fields {
		for _, part := range strings.FieldsFunc(f, func(r rune) bool { return r == ',' || r == '-' || r == '/' }) {
			if !strings.ContainsAny(part, "LW#") {
				continue
			}
			if _, isName := names[strings.ToUpper(part)]; !isName {
				return false
			}
		}
	}
	return true
}

var names = map[string]bool{
	"SUN": true, "MON": true, "TUE": true, "WED": true, "THU": true, "FRI": true, "SAT": true,
	"JAN": true, "FEB": true, "MAR": true, "APR": true, "MAY": true, "JUN": true, "JUL": true,
	"AUG": true, "SEP": true, "OCT": true, "NOV": true, "DEC": true,
}

// mapDow turns AWS day-of-week numbers (1-7, 1 = Sunday) into robfig/cron's
// (0-6, 0 = Sunday), leaving names, '*', '?' and steps as they are.
func mapDow(field string) (string, error) {
	parts := strings.Split(field, ",")
	for i, p := range parts {
		base, step, hasStep := strings.Cut(p, "/")
		lo, hi, isRange := strings.Cut(base, "-")
		m := func(s string) (string, error) {
			if s == "*" || s == "?" {
				return s, nil
			}
			n, err := strconv.Atoi(s)
			if err != nil {
				return s, nil // a name, or garbage the parser refuses
			}
			if n < 1 || n > 7 {
				return "", fmt.Errorf("%d is out of range 1-7 (1 = SUN)", n)
			}
			return strconv.Itoa(n - 1), nil
		}
		a, err := m(lo)
		if err != nil {
			return "", err
		}
		out := a
		if isRange {
			b, err := m(hi)
			if err != nil {
				return "", err
			}
			out += "-" + b
		}
		if hasStep {
			out += "/" + step
		}
		parts[i] = out
	}
	return strings.Join(parts, ","), nil
}

func parseYears(field string) ([]yearRange, error) {
	var out []yearRange
	for _, p := range strings.Split(field, ",") {
		base, stepS, hasStep := strings.Cut(p, "/")
		r := yearRange{from: minYear, to: maxYear, step: 1}
		if base != "*" {
			lo, hi, isRange := strings.Cut(base, "-")
			var err error
			if r.from, err = strconv.Atoi(lo); err != nil {
				return nil, fmt.Errorf("'%s' is not a year", lo)
			}
			r.to = r.from
			if isRange {
				if r.to, err = strconv.Atoi(hi); err != nil {
					return nil, fmt.Errorf("'%s' is not a year", hi)
				}
			} else if hasStep {
				r.to = maxYear
			}
		}
		if r.from < minYear || r.to > maxYear || r.from > r.to {
			return nil, fmt.Errorf("years must be within %d-%d, in order", minYear, maxYear)
		}
		if hasStep {
			n, err := strconv.Atoi(stepS)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("step '%s' is not a positive number", stepS)
			}
			r.step = n
		}
		out = append(out, r)
	}
	return out, nil
}

func (w *Window) yearOK(y int) bool {
	if w.years == nil {
		return true
	}
	for _, r := range w.years {
		if y >= r.from && y <= r.to && (y-r.from)%r.step == 0 {
			return true
		}
	}
	return false
}

// Open reports whether the window is open at t (its minute matches).
func (w *Window) Open(t time.Time) bool {
	m := t.In(w.loc).Truncate(time.Minute)
	return w.yearOK(m.Year()) && w.sched.Next(m.Add(-time.Second)).Equal(m)
}

// Next returns the start of the next minute after t at which the window is
// open, and false when it never opens again.
func (w *Window) Next(t time.Time) (time.Time, bool) {
	cur := t
	for range 1000 { // bounded: each turn skips a non-matching year or finds a time
		n := w.sched.Next(cur)
		if n.IsZero() {
			return time.Time{}, false
		}
		local := n.In(w.loc)
		if local.Year() > maxYear {
			return time.Time{}, false
		}
		if w.yearOK(local.Year()) {
			return n, true
		}
		// Jump to the start of the next year (minus a second, as Next is exclusive).
		cur = time.Date(local.Year()+1, 1, 1, 0, 0, 0, 0, w.loc).Add(-time.Second)
	}
	return time.Time{}, false
}

// String is the expression as written.
func (w *Window) String() string { return w.expr }
