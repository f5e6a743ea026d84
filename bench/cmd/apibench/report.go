package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// The targets of the issues.
const (
	targetFractionOfNoop = 0.5               // pipelined reads at ≥ 50% of the no-op rate
	targetLatencyRatio   = 2.0               // large-store latency ≤ 2× small-store latency
	targetMemory         = 150 * 1024 * 1024 // resident memory < 150 MB
	motoReferencePercent = 2.0               // what the issue saw for moto, for scale
)

type readRow struct {
	target, call string
	rate         rate
}

type latRow struct {
	backend         string
	large           int                // pipelines in the large store
	small, largeLat map[string]latency // by call, see latencyCalls
	fillRate        float64            // CreatePipeline/s while filling
	filled          int
	mem             memory // after the large-store measurements
}

// baseline is the small-store latency a large-store call is compared with:
// the same call, except for the middle page, which the small store does
// not have (its first page holds every pipeline), so its first page.
func (x latRow) baseline(call string) latency {
	if l, ok := x.small[call]; ok {
		return l
	}
	return x.small[latencyCalls[1]]
}

type writeRow struct {
	backend  string
	replicas int
	call     string
	rate     rate
}

// report collects the results and renders them as markdown.
type report struct {
	o                 *options
	command           string
	machine           machine
	started, finished time.Time
	reads             []readRow
	lat               []latRow
	writes            []writeRow
	notes             []string
	perfFiles         []string
}

func newReport(o *options) *report {
	return &report{o: o, command: commandLine(os.Args[1:])}
}

func (r *report) hasData() bool { return len(r.reads)+len(r.lat)+len(r.writes) > 0 }

// commandLine is how to repeat this run: the go run form, arguments quoted
// for a POSIX shell where needed.
func commandLine(args []string) string {
	parts := []string{"go run ./bench/cmd/apibench"}
	for _, a := range args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// machine describes where the run happened: the numbers mean little without it.
type machine struct {
	date, cpu, kernel, goVersion, loadStart string
	nproc                                   int
}

func machineInfo(ctx context.Context) machine {
	m := machine{
		date:      time.Now().UTC().Format("2006-01-02 15:04 UTC"),
		nproc:     runtime.NumCPU(),
		cpu:       cpuModel(),
		kernel:    firstLine("/proc/sys/kernel/osrelease"),
		loadStart: loadAvg(),
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(out))
	} else {
		m.goVersion = runtime.Version()
	}
	return m
}

// write lists where and how the run happened, as the first lines of a
// report.
func (m machine) write(w io.Writer, started, finished time.Time, command string) {
	fmt.Fprintf(w, "- Date: %s\n", m.date)
	fmt.Fprintf(w, "- Machine: %d CPUs (nproc), %s, Linux %s\n", m.nproc, m.cpu, m.kernel)
	fmt.Fprintf(w, "- Go: %s\n", m.goVersion)
	fmt.Fprintf(w, "- Load average (1 5 15 min): %s at start, %s at end\n", m.loadStart, loadAvg())
	if !finished.IsZero() {
		fmt.Fprintf(w, "- Measurements took %s\n", finished.Sub(started).Round(time.Second))
	}
	fmt.Fprintf(w, "- Command: `%s`\n", command)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func firstLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "?"
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// loadAvg is the 1, 5 and 15 minute load average: on a shared machine it
// says how much else was running.
func loadAvg() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// totalErrors counts the failed requests of every measurement.
func (r *report) totalErrors() int64 {
	var n int64
	for _, x := range r.reads {
		n += x.rate.Errors
	}
	for _, x := range r.lat {
		for _, m := range []map[string]latency{x.small, x.largeLat} {
			for _, l := range m {
				n += l.Errors
			}
		}
	}
	for _, x := range r.writes {
		n += x.rate.Errors
	}
	return n
}

func (r *report) write(w io.Writer) {
	r.header(w)
	r.readTable(w)
	r.latencyTables(w)
	r.writeTable(w)
	r.targets(w)
	r.errorList(w)
	r.notesList(w)
}

func (r *report) header(w io.Writer) {
	fmt.Fprintf(w, "# pipelined API benchmark\n\n")
	r.machine.write(w, r.started, r.finished, r.command)
	fmt.Fprintf(w, "- Each measurement: %s after a %s warm-up; throughput with %d connections in a closed loop; latency on 1 connection, sequential\n\n",
		r.o.duration, warmup(r.o.duration), r.o.conns)
	if n := r.totalErrors(); n > 0 {
		fmt.Fprintf(w, "**This run had %d failed requests (see Errors): the rows with errors are not clean measurements.**\n\n", n)
	} else {
		fmt.Fprintf(w, "No request failed.\n\n")
	}
}

// noopRate is the ceiling every read rate is compared with.
func (r *report) noopRate() float64 {
	for _, x := range r.reads {
		if x.target == "no-op" {
			return x.rate.PerSec()
		}
	}
	return 0
}

func (r *report) readTable(w io.Writer) {
	if len(r.reads) == 0 {
		return
	}
	fmt.Fprintf(w, "## Read throughput (%d pipelines stored)\n\n", seedPipelines)
	fmt.Fprintf(w, "| server | call | req/s | of no-op | server CPU µs/req | errors |\n|---|---|--:|--:|--:|--:|\n")
	noop := r.noopRate()
	for _, x := range r.reads {
		fmt.Fprintf(w, "| %s | %s | %.0f | %s | %s | %d |\n", x.target, x.call, x.rate.PerSec(), percentOf(x.rate.PerSec(), noop), us(x.rate.CPUPerRequest()), x.rate.Errors)
	}
	fmt.Fprintf(w, "\nServer CPU is the server process's user+system time over the window divided by the requests (for PostgreSQL it leaves out the database's own processes). "+
		"The load generator runs on the same CPUs and is not counted.\n\n")
}

func percentOf(v, of float64) string {
	if of <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f%%", 100*v/of)
}

func (r *report) latencyTables(w io.Writer) {
	if len(r.lat) == 0 {
		return
	}
	fmt.Fprintf(w, "## Latency with %d vs %d pipelines (1 connection, sequential; ms)\n\n", seedPipelines, r.lat[0].large)
	fmt.Fprintf(w, "| backend | call | p50 @%d | p99 @%d | p50 @%d | p99 @%d | p50 ratio | p99 ratio | errors |\n",
		seedPipelines, seedPipelines, r.lat[0].large, r.lat[0].large)
	fmt.Fprintf(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, x := range r.lat {
		for _, call := range latencyCalls {
			s, l := x.baseline(call), x.largeLat[call]
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", x.backend, call,
				ms(s.P50), ms(s.P99), ms(l.P50), ms(l.P99), ratio(l.P50, s.P50), ratio(l.P99, s.P99), x.small[call].Errors+l.Errors)
		}
	}
	fmt.Fprintf(w, "\nWith %d pipelines all of them fit in the first page, so the middle-page row's baseline is that first page (%d entries, against 100 at the large size). "+
		"The maxResults 10 row returns 10 entries at both sizes: it separates the cost of the store's size from that of a bigger response.\n\n", seedPipelines, seedPipelines)

	fmt.Fprintf(w, "| backend | pipelines created by the fill | fill: CreatePipeline/s (%d connections) | VmRSS after | VmHWM (peak) |\n|---|--:|--:|--:|--:|\n", r.o.conns)
	for _, x := range r.lat {
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %s |\n", x.backend, x.filled, x.fillRate, mb(x.mem.RSS), mb(x.mem.HWM))
	}
	fmt.Fprintln(w)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func us(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond))
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1024*1024)) }

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

func (r *report) writeTable(w io.Writer) {
	if len(r.writes) == 0 {
		return
	}
	fmt.Fprintf(w, "## Write throughput (%d connections; replicas share one database, requests round-robin)\n\n", r.o.conns)
	fmt.Fprintf(w, "| backend | replicas | call | req/s | server CPU µs/req | errors |\n|---|--:|---|--:|--:|--:|\n")
	for _, x := range r.writes {
		fmt.Fprintf(w, "| %s | %d | %s | %.0f | %s | %d |\n", x.backend, x.replicas, x.call, x.rate.PerSec(), us(x.rate.CPUPerRequest()), x.rate.Errors)
	}
	fmt.Fprintln(w)
}

// check is one line of the targets table.
type check struct {
	target, measured string
	verdict          string
}

func verdict(ok, clean bool) string {
	switch {
	case !clean:
		return "not judged: the measurement had errors"
	case ok:
		return "met"
	default:
		return "**MISSED**"
	}
}

func (r *report) targets(w io.Writer) {
	var checks []check
	checks = append(checks, r.throughputChecks()...)
	checks = append(checks, r.latencyChecks()...)
	if len(checks) == 0 {
		return
	}
	fmt.Fprintf(w, "## Targets\n\n| target | measured | verdict |\n|---|---|---|\n")
	for _, c := range checks {
		fmt.Fprintf(w, "| %s | %s | %s |\n", c.target, c.measured, c.verdict)
	}
	fmt.Fprintf(w, "\nThe latency targets are judged on p50 (p99 is shown beside it), the memory target on the peak (VmHWM, which includes the fill). Issue B states no numbers: the PostgreSQL rows apply Issue A's bars for comparison.\n\n")
}

func (r *report) throughputChecks() []check {
	noop := r.noopRate()
	if noop <= 0 {
		return nil
	}
	var out []check
	for _, x := range r.reads {
		frac := x.rate.PerSec() / noop
		measured := fmt.Sprintf("%.0f req/s = %.1f%% of no-op (%.0f req/s)", x.rate.PerSec(), 100*frac, noop)
		clean := x.rate.Errors == 0
		switch {
		case strings.HasPrefix(x.target, "pipelined"):
			out = append(out, check{
				target:   fmt.Sprintf("%s %s ≥ %.0f%% of no-op", x.target, x.call, 100*targetFractionOfNoop),
				measured: measured, verdict: verdict(frac >= targetFractionOfNoop, clean),
			})
		case x.target == "moto_server":
			out = append(out, check{
				target:   fmt.Sprintf("moto_server %s, for scale (the issue saw about %.0f%% of no-op)", x.call, motoReferencePercent),
				measured: measured, verdict: "reference only",
			})
		}
	}
	return out
}

func (r *report) latencyChecks() []check {
	var out []check
	for _, x := range r.lat {
		for _, call := range latencyCalls[:3] {
			s, l := x.baseline(call), x.largeLat[call]
			if s.P50 <= 0 {
				continue
			}
			rat := float64(l.P50) / float64(s.P50)
			out = append(out, check{
				target: fmt.Sprintf("%s %s latency @%d ≤ %.0f× @%d", x.backend, call, x.large, targetLatencyRatio, seedPipelines),
				measured: fmt.Sprintf("p50 %s → %s ms (%.2f×); p99 %s → %s ms (%s)",
					ms(s.P50), ms(l.P50), rat, ms(s.P99), ms(l.P99), ratio(l.P99, s.P99)),
				verdict: verdict(rat <= targetLatencyRatio, s.Errors+l.Errors == 0),
			})
		}
		out = append(out, check{
			target:   fmt.Sprintf("%s server resident memory < %d MB with %d pipelines", x.backend, targetMemory>>20, x.large),
			measured: fmt.Sprintf("VmRSS %s, VmHWM (peak) %s", mb(x.mem.RSS), mb(x.mem.HWM)),
			verdict:  verdict(x.mem.HWM < targetMemory, true),
		})
	}
	return out
}

func (r *report) errorList(w io.Writer) {
	var lines []string
	add := func(what string, n int64, first string) {
		if n > 0 {
			lines = append(lines, fmt.Sprintf("- %s: %d failed; first: `%s`", what, n, strings.ReplaceAll(first, "`", "'")))
		}
	}
	for _, x := range r.reads {
		add(x.target+" "+x.call, x.rate.Errors, x.rate.FirstErr)
	}
	for _, x := range r.lat {
		for _, call := range latencyCalls {
			add(fmt.Sprintf("%s latency %s @%d", x.backend, call, seedPipelines), x.small[call].Errors, x.small[call].FirstErr)
			add(fmt.Sprintf("%s latency %s @%d", x.backend, call, x.large), x.largeLat[call].Errors, x.largeLat[call].FirstErr)
		}
	}
	for _, x := range r.writes {
		add(fmt.Sprintf("%s ×%d %s", x.backend, x.replicas, x.call), x.rate.Errors, x.rate.FirstErr)
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "## Errors\n\n%s\n\n", strings.Join(lines, "\n"))
}

func (r *report) notesList(w io.Writer) {
	if len(r.notes) == 0 && len(r.perfFiles) == 0 {
		return
	}
	fmt.Fprintf(w, "## Notes\n\n")
	for _, n := range r.notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
	for _, f := range r.perfFiles {
		fmt.Fprintf(w, "- CPU profile: `perf report -i %s`\n", f)
	}
	fmt.Fprintln(w)
}
