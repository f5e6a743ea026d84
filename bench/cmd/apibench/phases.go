package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
)

// The read calls, with the same body for every target.
var (
	getReq    = apiCall("GetPipeline", getBody(getName))
	listReq   = apiCall("ListPipelines", listBody(100, ""))
	list10Req = apiCall("ListPipelines", listBody(10, ""))
)

// readPhase measures read throughput side by side: the no-op ceiling, then
// pipelined on SQLite, moto, and pipelined on PostgreSQL (pg may be nil),
// each with seedPipelines stored. Each server runs only while it is measured.
func (b *bench) readPhase(ctx context.Context, sqlite, pg *backend) error {
	if err := b.readNoop(ctx); err != nil {
		return err
	}
	if err := b.readPipelined(ctx, sqlite); err != nil {
		return err
	}
	if b.o.moto {
		if err := b.readMoto(ctx); err != nil {
			return err
		}
	}
	if pg != nil {
		return b.readPipelined(ctx, pg)
	}
	return nil
}

func (b *bench) readNoop(ctx context.Context) error {
	srv, err := b.startNoop(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := newClient(b.o.conns, srv.url)
	defer c.close()
	// A GetPipeline-shaped request: same target header, body and signing.
	return b.measureRead(ctx, c, srv, false, "no-op", "GetPipeline-shaped request", getReq)
}

func (b *bench) readPipelined(ctx context.Context, be *backend) error {
	srv, err := b.startPipelined(ctx, be, 1)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := newClient(b.o.conns, srv.url)
	defer c.close()
	if _, err := b.seed(ctx, c, be, seedPipelines); err != nil {
		return err
	}
	target := "pipelined " + be.name
	if err := b.measureRead(ctx, c, srv, true, target, "GetPipeline", getReq); err != nil {
		return err
	}
	return b.measureRead(ctx, c, srv, true, target, "ListPipelines (maxResults 100)", listReq)
}

func (b *bench) readMoto(ctx context.Context) error {
	srv, roleArn, err := b.startMoto(ctx)
	if err != nil {
		return err
	}
	defer srv.stop()
	c := newClient(b.o.conns, srv.url)
	defer c.close()
	if _, err := createSeq(ctx, c, b.tmpl, roleArn, b.o.conns, 0, seedPipelines); err != nil {
		return fmt.Errorf("moto: %w", err)
	}
	if err := b.measureRead(ctx, c, srv, false, "moto_server", "GetPipeline", getReq); err != nil {
		return err
	}
	return b.measureRead(ctx, c, srv, false, "moto_server", "ListPipelines (maxResults 100)", listReq)
}

// measureRead runs one throughput measurement of srv and records it.
// profile says whether -perf applies (to pipelined only: the profiles are
// for finding its hot spots).
func (b *bench) measureRead(ctx context.Context, c *client, srv *server, profile bool, target, call string, r request) error {
	log.Printf("read throughput: %s %s", target, call)
	stopPerf := func() {}
	if profile {
		stopPerf = b.startPerf(target+" "+call, srv)
	}
	res, err := throughput(ctx, c, b.o.conns, b.o.duration, fixedCall(r), cpuOf(srv))
	stopPerf()
	if err != nil {
		return fmt.Errorf("%s %s: %w", target, call, err)
	}
	b.report.reads = append(b.report.reads, readRow{target: target, call: call, rate: res})
	return nil
}

// latencyPhase measures sequential latency on one connection with
// seedPipelines stored, fills the store to -pipelines, measures again, and
// reads the server's memory.
func (b *bench) latencyPhase(ctx context.Context, be *backend) error {
	srv, err := b.startPipelined(ctx, be, 1)
	if err != nil {
		return err
	}
	defer srv.stop()
	one := newClient(1, srv.url)
	defer one.close()
	many := newClient(b.o.conns, srv.url)
	defer many.close()
	if _, err := b.seed(ctx, many, be, seedPipelines); err != nil {
		return err
	}

	row := latRow{backend: be.name, large: b.o.pipelines}
	if row.small, err = b.latencies(ctx, be, one, nil); err != nil {
		return err
	}

	log.Printf("%s: filling to %d pipelines", be.name, b.o.pipelines)
	before := be.stored
	if row.fillRate, err = b.seed(ctx, many, be, b.o.pipelines); err != nil {
		return err
	}
	row.filled = be.stored - before

	// A page from the middle: the token that starts page pipelines/200 of
	// pages of 100, i.e. half-way through the names.
	token, err := listToken(ctx, one, 100, b.o.pipelines/200)
	if err != nil {
		return fmt.Errorf("%s: %w", be.name, err)
	}
	middle := apiCall("ListPipelines", listBody(100, token))
	if row.largeLat, err = b.latencies(ctx, be, one, &middle); err != nil {
		return err
	}
	if row.mem, err = srv.memory(); err != nil {
		return fmt.Errorf("%s: memory: %w", be.name, err)
	}
	b.report.lat = append(b.report.lat, row)
	return nil
}

// latencyCalls are the calls the latency phase measures, in report order.
var latencyCalls = []string{"GetPipeline", "ListPipelines first page (maxResults 100)", "ListPipelines middle page (maxResults 100)", "ListPipelines first page (maxResults 10)"}

// latencies measures every latency call. With the small store there is no
// middle page (middle is nil): all pipelines fit in the first page, which
// the report then uses as the baseline of both pages (latRow.baseline).
func (b *bench) latencies(ctx context.Context, be *backend, c *client, middle *request) (map[string]latency, error) {
	reqs := map[string]request{latencyCalls[0]: getReq, latencyCalls[1]: listReq, latencyCalls[3]: list10Req}
	if middle != nil {
		reqs[latencyCalls[2]] = *middle
	}
	out := make(map[string]latency, len(latencyCalls))
	for _, call := range latencyCalls {
		r, ok := reqs[call]
		if !ok {
			continue
		}
		log.Printf("latency: %s, %d pipelines: %s", be.name, be.stored, call)
		l, err := measureLatency(ctx, c, b.o.duration, fixedCall(r), nil)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", be.name, call, err)
		}
		out[call] = l
	}
	return out, nil
}

// writePhase measures CreatePipeline and UpdatePipeline throughput on
// SQLite (one process: SQLite serves one) and on PostgreSQL with one and
// with two replicas sharing the database, the load split round-robin.
func (b *bench) writePhase(ctx context.Context, sqlite, pg *backend) error {
	if err := b.writeOn(ctx, sqlite, 1); err != nil {
		return err
	}
	if pg == nil {
		return nil
	}
	if err := b.writeOn(ctx, pg, 1); err != nil {
		return err
	}
	return b.writeOn(ctx, pg, 2)
}

func (b *bench) writeOn(ctx context.Context, be *backend, replicas int) error {
	urls := make([]string, 0, replicas)
	servers := make([]*server, 0, replicas)
	for i := 1; i <= replicas; i++ {
		srv, err := b.startPipelined(ctx, be, i)
		if err != nil {
			return err
		}
		defer srv.stop()
		urls = append(urls, srv.url)
		servers = append(servers, srv)
	}
	c := newClient(b.o.conns, urls...)
	defer c.close()
	// Names unique per measurement: the PostgreSQL runs share one database.
	prefix := fmt.Sprintf("w%d", replicas)
	for _, call := range []string{"CreatePipeline", "UpdatePipeline"} {
		log.Printf("write throughput: %s, %d replica(s): %s", be.name, replicas, call)
		wl := b.createLoad(prefix)
		if call == "UpdatePipeline" {
			wl = b.updateLoad(prefix)
		}
		stopPerf := b.startPerf(fmt.Sprintf("pipelined %s x%d %s", be.name, replicas, call), servers...)
		res, err := throughput(ctx, c, b.o.conns, b.o.duration, wl, cpuOf(servers...))
		stopPerf()
		if err != nil {
			return fmt.Errorf("%s %s: %w", be.name, call, err)
		}
		b.report.writes = append(b.report.writes, writeRow{backend: be.name, replicas: replicas, call: call, rate: res})
	}
	return nil
}

// createLoad creates a new pipeline per request.
func (b *bench) createLoad(prefix string) workload {
	return workload{step: func(ctx context.Context, w *worker) error {
		w.seq++
		name := fmt.Sprintf("%s-create-%d-%d", prefix, w.id, w.seq)
		resp, err := w.c.do(ctx, apiCall("CreatePipeline", b.tmpl.createBody(name, "")), &w.buf)
		return callErr(resp, err)
	}}
}

// updateLoad has each worker update its own pipeline in a loop, sending the
// version it last got back, as a careful client does.
func (b *bench) updateLoad(prefix string) workload {
	return workload{
		setup: func(ctx context.Context, w *worker) error {
			w.pipeline = fmt.Sprintf("%s-update-%d", prefix, w.id)
			body, err := w.c.call(ctx, apiCall("CreatePipeline", b.tmpl.createBody(w.pipeline, "")))
			if err != nil {
				return err
			}
			w.version, err = pipelineVersion(body)
			return err
		},
		step: func(ctx context.Context, w *worker) error {
			resp, err := w.c.do(ctx, apiCall("UpdatePipeline", b.tmpl.updateBody(w.pipeline, w.version, w.version)), &w.buf)
			if err := callErr(resp, err); err != nil {
				// Resynchronise so that one failure does not fail every
				// later update with a stale version.
				if body, gerr := w.c.call(ctx, apiCall("GetPipeline", getBody(w.pipeline))); gerr == nil {
					if v, verr := pipelineVersion(body); verr == nil {
						w.version = v
					}
				}
				return err
			}
			v, err := pipelineVersion(resp.body)
			if err != nil {
				return err
			}
			w.version = v
			return nil
		},
	}
}

// pipelineVersion reads pipeline.version from a Create/Get/UpdatePipeline
// response.
func pipelineVersion(body []byte) (int, error) {
	var out struct {
		Pipeline struct {
			Version int `json:"version"`
		} `json:"pipeline"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return 0, fmt.Errorf("decode pipeline version: %w", err)
	}
	if out.Pipeline.Version < 1 {
		return 0, errors.New("response has no pipeline.version")
	}
	return out.Pipeline.Version, nil
}
