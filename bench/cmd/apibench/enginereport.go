package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// The engine targets of the issue tracker.
const (
	targetOverheadCPU    = 50 * time.Millisecond // pipelined's time per execution of the 10-stage pipeline
	targetCompletionP99  = 5 * time.Millisecond  // p99 from an action's completion to the next action's start
	targetConcurrentRuns = 1000                  // concurrent executions of a PARALLEL pipeline, no errors
)

// engineReport collects the engine suite's results and renders them as
// markdown.
type engineReport struct {
	o                 *options
	command           string
	machine           machine
	started, finished time.Time
	floor             *latency // the no-op server, one connection
	overhead          []overheadRow
	concurrent        []concurrentRow
	jobs              []jobsRow
	perfFiles         []string
}

func newEngineReport(o *options) *engineReport {
	return &engineReport{o: o, command: commandLine(os.Args[1:])}
}

func (r *engineReport) hasData() bool {
	return r.floor != nil || len(r.overhead)+len(r.concurrent)+len(r.jobs) > 0
}

// totalErrors counts failed calls, and executions of a concurrent run that
// did not reach Succeeded.
func (r *engineReport) totalErrors() int64 {
	var n int64
	if r.floor != nil {
		n += r.floor.Errors
	}
	for _, x := range r.overhead {
		n += x.errors
	}
	for _, x := range r.jobs {
		n += x.errors
		if x.incorrect != "" {
			n++
		}
	}
	for _, x := range r.concurrent {
		n += x.errors
		if !x.complete {
			n += max(1, int64(x.executions)-int64(x.final["Succeeded"]-1))
		}
	}
	return n
}

func (r *engineReport) write(w io.Writer) {
	fmt.Fprintf(w, "# pipelined engine benchmark\n\n")
	r.machine.write(w, r.started, r.finished, r.command)
	fmt.Fprintf(w, "- Orchestration overhead: a %d-stage pipeline of one custom action per stage, executions one at a time, one worker, for %s after a %s warm-up\n",
		overheadStages, r.o.duration, warmup(r.o.duration))
	fmt.Fprintf(w, "- Concurrent executions: %d executions of a %d-stage PARALLEL pipeline, started by %d goroutines, jobs done by %d workers\n",
		r.o.executions, concurrentStages, r.o.starters, r.o.workers)
	wait := "the server long-polls with its default `--job-poll-wait`"
	if d, err := time.ParseDuration(r.o.pollWait); err == nil && d == 0 {
		wait = "the server answers at once, `--job-poll-wait 0`"
	} else if r.o.pollWait != "" {
		wait = "the server long-polls with `--job-poll-wait " + r.o.pollWait + "`"
	}
	fmt.Fprintf(w, "- Workers: goroutines of the load generator, one poller per action type (source, build) per worker, that poll (maxBatchSize 1; %s; %s sleep after an empty answer), acknowledge and report success at once\n\n", wait, idlePoll)
	if n := r.totalErrors(); n > 0 {
		fmt.Fprintf(w, "**This run had %d failed calls or unfinished executions (see Errors): the rows with errors are not clean measurements.**\n\n", n)
	} else {
		fmt.Fprintf(w, "No request failed; every execution Succeeded.\n\n")
	}
	r.overheadTables(w)
	r.concurrentTables(w)
	r.jobsTable(w)
	r.cpuTable(w)
	r.targets(w)
	r.errorList(w)
	if len(r.perfFiles) > 0 {
		fmt.Fprintf(w, "## Notes\n\n")
		for _, f := range r.perfFiles {
			fmt.Fprintf(w, "- CPU profile: `perf report -i %s`\n", f)
		}
		fmt.Fprintln(w)
	}
}

// perExecution is d divided among n executions.
func perExecution(d time.Duration, n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return d / time.Duration(n)
}

func msf(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond))
}

// requests is the calls the overhead run made per execution, in all and
// the empty polls among them.
func (x overheadRow) requests() (all, empty float64) {
	var n int64
	for _, s := range x.calls {
		n += s.N
	}
	if x.executions == 0 {
		return 0, 0
	}
	return float64(n) / float64(x.executions), float64(x.calls[callPollEmpty].N) / float64(x.executions)
}

func (x overheadRow) mean() time.Duration {
	var sum time.Duration
	for _, d := range x.walls {
		sum += d
	}
	return perExecution(sum, len(x.walls))
}

// floorFor is what the overhead run's requests would take on the no-op
// server: their number times its p50 latency (wall) and times its CPU per
// request.
func (r *engineReport) floorFor(x overheadRow) (wall, cpu time.Duration) {
	if r.floor == nil || r.floor.N == 0 {
		return 0, 0
	}
	reqs, _ := x.requests()
	wall = time.Duration(reqs * float64(r.floor.P50))
	cpu = time.Duration(reqs * float64(r.floor.ServerCPU) / float64(r.floor.N))
	return wall, cpu
}

func (r *engineReport) overheadTables(w io.Writer) {
	if len(r.overhead) == 0 && r.floor == nil {
		return
	}
	fmt.Fprintf(w, "## Orchestration overhead (%d stages, one instant custom action each; one execution at a time, one worker)\n\n", overheadStages)
	if len(r.overhead) > 0 {
		fmt.Fprintf(w, "| backend | executions | wall ms/execution: mean | p50 | p99 | pipelined CPU ms/execution | PostgreSQL CPU ms/execution | requests/execution (empty polls) | HTTP floor of those requests: wall ms, CPU ms | errors |\n")
		fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, x := range r.overhead {
			reqs, empty := x.requests()
			fw, fc := r.floorFor(x)
			db := "–"
			if x.cpu.HasDB && x.backend == "PostgreSQL" {
				db = msf(perExecution(x.cpu.Database, x.executions))
			}
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | **%s** | %s | %.1f (%.1f) | %s, %s | %d |\n", x.backend, x.executions,
				msf(x.mean()), msf(percentile(x.walls, 50)), msf(percentile(x.walls, 99)),
				msf(perExecution(x.cpu.Server, x.executions)), db, reqs, empty, msf(fw), msf(fc), x.errors)
		}
		fmt.Fprintf(w, "\nWall: from sending StartPipelineExecution to the answer to the last action's PutJobSuccessResult (the engine ends the execution in that request's transaction). "+
			"pipelined CPU: user+system time of the server process over the measured executions (from `/proc/PID/stat`), divided by them; it includes every request of the run (polls too) and the server's background work. "+
			"HTTP floor: the same number of requests at the no-op server's p50 latency and CPU per request (one connection, sequential, PutJobSuccessResult-shaped).\n\n")
	}
	fmt.Fprintf(w, "Latency of each call in the overhead run, as the worker (or, for StartPipelineExecution, the driver) sees it: signing, HTTP round trip and the server's work (ms):\n\n")
	fmt.Fprintf(w, "| backend | call | calls | p50 | p99 |\n|---|---|--:|--:|--:|\n")
	if f := r.floor; f != nil {
		fmt.Fprintf(w, "| no-op server | PutJobSuccessResult-shaped request | %d | %s | %s |\n", f.N, ms(f.P50), ms(f.P99))
	}
	for _, x := range r.overhead {
		for _, call := range engineCalls {
			if s, ok := x.calls[call]; ok {
				fmt.Fprintf(w, "| %s | %s | %d | %s | %s |\n", x.backend, call, s.N, ms(s.P50), ms(s.P99))
			}
		}
		if len(x.wakes) > 0 {
			fmt.Fprintf(w, "| %s | StartPipelineExecution sent → the source job in the worker's hands | %d | %s | %s |\n",
				x.backend, len(x.wakes), ms(percentile(x.wakes, 50)), ms(percentile(x.wakes, 99)))
		}
	}
	fmt.Fprintf(w, "\nThe last row is the start of an execution as a worker sees it: the source poller waits in a long poll between executions, and the server wakes it when the start queues the source job.\n\n")
}

func (r *engineReport) concurrentTables(w io.Writer) {
	if len(r.concurrent) == 0 {
		return
	}
	fmt.Fprintf(w, "## %d concurrent executions (%d-stage PARALLEL pipeline, %d starters, %d workers)\n\n", r.o.executions, concurrentStages, r.o.starters, r.o.workers)
	fmt.Fprintf(w, "| backend | started | all Succeeded | executions/s | total time | starts took | last job reported | peak in flight | server peak RSS (VmHWM) | errors |\n")
	fmt.Fprintf(w, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, x := range r.concurrent {
		ok := "yes"
		if !x.complete {
			ok = "**no**: " + x.final.String()
		}
		rate := "–"
		if x.complete {
			rate = fmt.Sprintf("**%.0f**", x.executionsPerSec())
		}
		fmt.Fprintf(w, "| %s | %d of %d | %s | %s | %.2f s | %.2f s | %.2f s | %d | %s | %d |\n", x.backend, x.started, x.executions, ok, rate,
			x.total.Seconds(), x.startsTook.Seconds(), x.lastReported.Seconds(), x.peakInFlight, mb(x.mem.HWM), x.errors)
	}
	fmt.Fprintf(w, "\nTotal time: from the first StartPipelineExecution until ListPipelineExecutions (paged, 100 a page) shows every execution of the pipeline Succeeded; executions/s is the started executions over it. "+
		"Starts took: until the last StartPipelineExecution was answered. Last job reported: until the workers had reported the last-stage job of every started execution. "+
		"Peak in flight: the most executions started and not yet finished at once (sampled every 5 ms). "+
		"VmHWM is the server's peak resident memory since it started (fresh for this run; it includes the CreatePipeline execution).\n\n")
	fmt.Fprintf(w, "Latency of each call in the concurrent run (ms):\n\n| backend | call | calls | p50 | p99 | errors |\n|---|---|--:|--:|--:|--:|\n")
	for _, x := range r.concurrent {
		for _, call := range engineCalls {
			if s, ok := x.calls[call]; ok {
				fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %d |\n", x.backend, call, s.N, ms(s.P50), ms(s.P99), s.Errors)
			}
		}
	}
	fmt.Fprintln(w)
}

func (r *engineReport) cpuTable(w io.Writer) {
	if len(r.overhead)+len(r.concurrent) == 0 {
		return
	}
	fmt.Fprintf(w, "## Where the CPU went (CPU seconds, %% of the machine's capacity: CPUs × wall time)\n\n")
	fmt.Fprintf(w, "| run | wall | pipelined | PostgreSQL: pipelined's backends | PostgreSQL: all processes | load generator | other processes | idle |\n|---|--:|--:|--:|--:|--:|--:|--:|\n")
	row := func(name string, s cpuSplit) {
		db, all := "–", "–"
		if s.HasDB {
			db, all = s.share(s.Database), s.share(s.AllDB)
		}
		fmt.Fprintf(w, "| %s | %.2f s | %s | %s | %s | %s | %s | %s |\n", name, s.Wall.Seconds(),
			s.share(s.Server), db, all, s.share(s.LoadGen), s.share(s.Other()), s.share(s.Idle()))
	}
	for _, x := range r.overhead {
		row("overhead, "+x.backend, x.cpu)
	}
	for _, x := range r.concurrent {
		row("concurrent, "+x.backend, x.cpu)
	}
	fmt.Fprintf(w, "\nFrom `/proc`: the server process; the PostgreSQL backends serving the server's connections (matched by the client port in their process titles); "+
		"every process named `postgres` (those backends, the database's background processes, and other users' sessions: the server is shared); "+
		"this process (the workers, starters, signing); the rest of the machine's busy time from `/proc/stat` (other processes: the neighbours); and idle.\n\n")
}

func (r *engineReport) targets(w io.Writer) {
	var checks []check
	for _, x := range r.overhead {
		clean := x.errors == 0
		cpu := perExecution(x.cpu.Server, x.executions)
		checks = append(checks, check{
			target:   fmt.Sprintf("%s: orchestration overhead < %d ms of pipelined time per execution (%d stages)", x.backend, targetOverheadCPU/time.Millisecond, overheadStages),
			measured: fmt.Sprintf("%s ms of pipelined CPU per execution (wall %s ms mean, %s ms p99)", msf(cpu), msf(x.mean()), msf(percentile(x.walls, 99))),
			verdict:  verdict(cpu > 0 && cpu < targetOverheadCPU, clean),
		})
		put := x.calls[callPut]
		checks = append(checks, check{
			target:   fmt.Sprintf("%s: p99 < %d ms from an action's completion to the next action's start", x.backend, targetCompletionP99/time.Millisecond),
			measured: fmt.Sprintf("PutJobSuccessResult p99 %s ms (p50 %s ms, %d calls)", ms(put.P99), ms(put.P50), put.N),
			verdict:  verdict(put.N > 0 && put.P99 < targetCompletionP99, clean),
		})
	}
	for _, x := range r.concurrent {
		measured := fmt.Sprintf("%d of %d started, %s; %d errors", x.started, x.executions, x.final.String(), x.errors)
		if x.complete {
			measured += fmt.Sprintf("; %.0f executions/s, peak RSS %s", x.executionsPerSec(), mb(x.mem.HWM))
		}
		ok := x.complete && x.errors == 0 && int(x.started) == x.executions && x.executions >= targetConcurrentRuns
		v := verdict(ok, true)
		if x.executions < targetConcurrentRuns {
			v = fmt.Sprintf("not judged: -executions %d is below the target's %d", x.executions, targetConcurrentRuns)
		}
		checks = append(checks, check{
			target:   fmt.Sprintf("%s: %d concurrent executions of a PARALLEL pipeline complete with no errors", x.backend, targetConcurrentRuns),
			measured: measured, verdict: v,
		})
	}
	for _, x := range r.jobs {
		if x.backend != "SQLite" || x.workerKeys { // judged on the root credentials' row
			continue
		}
		checks = append(checks, check{
			target:   fmt.Sprintf("SQLite: at least %d jobs/s end to end with %d workers", targetJobsPerSec, r.o.workers),
			measured: fmt.Sprintf("%.0f jobs/s (%.2f of the raw write-transaction rate, %.0f/s); %d errors", x.jobsPerSec(), x.jobsPerSec()/x.rawTx, x.rawTx, x.errors),
			verdict:  verdict(x.jobsPerSec() >= targetJobsPerSec && x.incorrect == "", x.errors == 0),
		})
	}
	if len(checks) == 0 {
		return
	}
	fmt.Fprintf(w, "## Targets\n\n| target | measured | verdict |\n|---|---|---|\n")
	for _, c := range checks {
		fmt.Fprintf(w, "| %s | %s | %s |\n", c.target, c.measured, c.verdict)
	}
	fmt.Fprintf(w, "\npipelined's time per execution is judged on its CPU time (the wall time also holds the HTTP round trips and the worker's side). "+
		"The completion-to-next-start latency is judged on PutJobSuccessResult as the worker sees it: the engine records the completion and starts (queues the job of) the next action in one transaction, "+
		"which commits before the answer is sent, so the answer's latency bounds the time until the next action has started.\n\n")
}

func (r *engineReport) errorList(w io.Writer) {
	var lines []string
	if f := r.floor; f != nil && f.Errors > 0 {
		lines = append(lines, fmt.Sprintf("- no-op floor: %d failed; first: `%s`", f.Errors, f.FirstErr))
	}
	for _, x := range r.overhead {
		if x.errors > 0 {
			lines = append(lines, fmt.Sprintf("- overhead, %s: %d failed calls; first: `%s`", x.backend, x.errors, strings.ReplaceAll(x.firstErr, "`", "'")))
		}
	}
	for _, x := range r.concurrent {
		if x.errors > 0 {
			lines = append(lines, fmt.Sprintf("- concurrent, %s: %d failed calls; first: `%s`", x.backend, x.errors, strings.ReplaceAll(x.firstErr, "`", "'")))
		}
		if !x.complete {
			lines = append(lines, fmt.Sprintf("- concurrent, %s: not complete: %s", x.backend, x.finalErr))
		}
	}
	for _, x := range r.jobs {
		if x.errors > 0 {
			lines = append(lines, fmt.Sprintf("- jobs, %s: %d failed calls; first: `%s`", x.label(), x.errors, strings.ReplaceAll(x.firstErr, "`", "'")))
		}
		if x.incorrect != "" {
			lines = append(lines, fmt.Sprintf("- jobs, %s: %s", x.label(), x.incorrect))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "## Errors\n\n%s\n\n", strings.Join(lines, "\n"))
}

// jobsTable reports the job throughput beside the raw transaction rate: a
// row per backend and kind of credentials, and the worker keys' rate as a
// share of the root credentials'.
func (r *engineReport) jobsTable(w io.Writer) {
	if len(r.jobs) == 0 {
		return
	}
	fmt.Fprintf(w, "## Job throughput (%d workers; %d executions of the %d-stage PARALLEL pipeline queued before the workers start)\n\n", r.o.workers, jobsExecutions, concurrentStages)
	fmt.Fprintf(w, "| backend | jobs | took | jobs/s | raw write transactions/s (same database, %d goroutines) | jobs/s ÷ raw tx/s | p50 / p99 poll→job, ack, result (ms) | errors |\n|---|--:|--:|--:|--:|--:|---|--:|\n", r.o.workers)
	var incorrect []string
	for _, x := range r.jobs {
		lat := ""
		for i, call := range []string{callPollJob, callAck, callPut} {
			if i > 0 {
				lat += "; "
			}
			st := x.calls[call]
			lat += fmt.Sprintf("%s %s / %s", strings.TrimSuffix(strings.SplitN(call, " ", 2)[0], "Job"), msf(st.P50), msf(st.P99))
		}
		fmt.Fprintf(w, "| %s | %d | %s | **%.0f** | %.0f | %.2f | %s | %d |\n", x.label(), x.jobs, x.took.Round(time.Millisecond), x.jobsPerSec(), x.rawTx, x.jobsPerSec()/x.rawTx, lat, x.errors)
		if x.incorrect != "" {
			incorrect = append(incorrect, fmt.Sprintf("**%s: %s**", x.label(), x.incorrect))
		}
	}
	fmt.Fprintln(w)
	for _, l := range incorrect {
		fmt.Fprintf(w, "%s\n\n", l)
	}
	if ratios := r.workerKeyRatios(); ratios != "" {
		fmt.Fprintf(w, "Worker keys ÷ root credentials, jobs/s: %s.\n\n", ratios)
	}
	fmt.Fprintf(w, "A job is three requests (poll, acknowledge, report), each a write transaction in the server (the claim, the acknowledgement, the completion that also queues the next action's job); the raw rate is the store's smallest engine transaction (lock a pipeline, write its runtime) in a loop, on the same database, measured after the jobs in the same run.")
	if r.hasWorkerKeyRows() {
		fmt.Fprintf(w, " The rows with worker keys are the same measurement on the same server right after the root credentials' (a second pipeline, created and started with the root credentials): each worker's source and build pollers sign with a worker key of their action type, issued through the admin API, "+
			"so the server looks the key up (cached) on every request and reads the job on AcknowledgeJob and PutJobSuccessResult to check its type. The raw rate is measured once, after both, and stands beside both rows.")
	}
	fmt.Fprintf(w, "\n\n")
}

func (r *engineReport) hasWorkerKeyRows() bool {
	for _, x := range r.jobs {
		if x.workerKeys {
			return true
		}
	}
	return false
}

// workerKeyRatios is, for each backend measured with both kinds of
// credentials, the worker keys' jobs/s divided by the root credentials',
// noting a worker-key row whose measurement was not clean.
func (r *engineReport) workerKeyRatios() string {
	var parts []string
	for _, root := range r.jobs {
		if root.workerKeys {
			continue
		}
		for _, wk := range r.jobs {
			if !wk.workerKeys || wk.backend != root.backend {
				continue
			}
			p := fmt.Sprintf("%s **%.2f** (%.0f ÷ %.0f)", root.backend, wk.jobsPerSec()/root.jobsPerSec(), wk.jobsPerSec(), root.jobsPerSec())
			var flaws []string
			for _, x := range []jobsRow{root, wk} {
				if x.errors > 0 {
					flaws = append(flaws, fmt.Sprintf("%s: %d failed calls", x.label(), x.errors))
				}
				if x.incorrect != "" {
					flaws = append(flaws, x.label()+": not every execution finished")
				}
			}
			if len(flaws) > 0 {
				p += " (not a clean comparison: " + strings.Join(flaws, "; ") + ")"
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}
