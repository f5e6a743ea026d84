// Command consolebench measures the web console's issue-15 targets against
// a real `pipelined serve` process on SQLite, side by side in one run:
//
//   - the pipelines page's latency with 10 pipelines and with 10,000
//     (ratio, and p99 under 50 ms);
//   - how long a state change takes to reach an open pipeline page (the
//     server pushes it over server-sent events);
//   - what 200 open pages following live updates cost the server, in
//     resident memory and goroutines (read from its /metrics).
//
// Usage: go run ./bench/cmd/consolebench [-pipelines 10000] [-samples 200] [-pages 200]
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/admin"
)

const (
	akid   = "PLAKCONSOLEBENCH0000"
	secret = "console-bench-secret-0123456789abcdefABCD"
)

func main() {
	nPipelines := flag.Int("pipelines", 10000, "pipelines in the large phase")
	samples := flag.Int("samples", 200, "page loads measured per phase")
	pages := flag.Int("pages", 200, "open live pages in the memory phase")
	changes := flag.Int("changes", 30, "state changes timed to an open page")
	flag.Parse()
	ctx := context.Background()

	dir, err := os.MkdirTemp("", "consolebench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "pipelined")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pipelined").CombinedOutput(); err != nil {
		log.Fatalf("build: %v\n%s", err, out)
	}
	port := freePort()
	base := "http://127.0.0.1:" + port
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:"+port, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn")
	cmd.Env = append(os.Environ(), "PIPELINED_ROOT_ACCESS_KEY_ID="+akid, "PIPELINED_ROOT_SECRET_ACCESS_KEY="+secret)
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	waitReady(base)

	c := codepipeline.New(codepipeline.Options{Region: "us-east-1", BaseEndpoint: aws.String(base),
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
	must(c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{Category: types.ActionCategorySource, Provider: aws.String("BenchSource"), Version: aws.String("1"),
		InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 0}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1}}))
	createPipelines(ctx, c, 0, 10)
	pw := createUser(base, "bench")
	b := newBrowser(base)
	b.signIn("bench", pw)

	small := measurePage(b, "/console/pipelines", *samples)
	createPipelines(ctx, c, 10, *nPipelines)
	large := measurePage(b, "/console/pipelines", *samples)
	search := measurePage(b, "/console/pipelines?q=p09999", *samples/4)

	live := measureLive(ctx, b, c, *changes)
	mem := measurePages(base, b, *pages)

	fmt.Printf("## Console benchmark (issue 15), one run\n\n")
	fmt.Printf("| measurement | value | target |\n|---|---|---|\n")
	fmt.Printf("| pipelines page, 10 pipelines: p50 / p99 | %s / %s | |\n", ms(pct(small, 50)), ms(pct(small, 99)))
	fmt.Printf("| pipelines page, %d pipelines: p50 / p99 | %s / %s | p99 < 50 ms |\n", *nPipelines, ms(pct(large, 50)), ms(pct(large, 99)))
	fmt.Printf("| p99 ratio, %d ÷ 10 pipelines | %.2f | ≤ 2 |\n", *nPipelines, float64(pct(large, 99))/float64(pct(small, 99)))
	fmt.Printf("| name search over %d pipelines: p50 / p99 | %s / %s | |\n", *nPipelines, ms(pct(search, 50)), ms(pct(search, 99)))
	fmt.Printf("| state change → open page (DisableStageTransition to the SSE update): p50 / p99 / max | %s / %s / %s | < 1 s |\n", ms(pct(live, 50)), ms(pct(live, 99)), ms(pct(live, 100)))
	fmt.Printf("| %d open live pages: server RSS before → with them (Δ) | %.1f → %.1f MB (%+.1f MB) | Δ < 100 MB |\n", *pages, mem.rssBefore/1e6, mem.rssWith/1e6, (mem.rssWith-mem.rssBefore)/1e6)
	fmt.Printf("| %d open live pages: server goroutines before → with them (per page) | %.0f → %.0f (%.2f) | ≤ 1 per connection |\n", *pages, mem.gBefore, mem.gWith, (mem.gWith-mem.gBefore)/float64(*pages))
}

func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func waitReady(base string) {
	for range 300 {
		if r, err := http.Get(base + "/healthz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatal("server not ready")
}

// createPipelines creates pipelines p<from>..p<to-1>, 8 at a time.
func createPipelines(ctx context.Context, c *codepipeline.Client, from, to int) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				name := fmt.Sprintf("p%05d", i)
				_ = must(c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: &types.PipelineDeclaration{
					Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::000000000000:role/r"),
					ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
					Stages: []types.StageDeclaration{
						{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Src"),
							ActionTypeId:    &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerCustom, Provider: aws.String("BenchSource"), Version: aws.String("1")},
							OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Out")}}}}},
						{Name: aws.String("Gate"), Actions: []types.ActionDeclaration{{Name: aws.String("Approve"),
							ActionTypeId: &types.ActionTypeId{Category: types.ActionCategoryApproval, Owner: types.ActionOwnerAws, Provider: aws.String("Manual"), Version: aws.String("1")}}}},
					}}}))
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// createUser creates an operator through the admin API, as
// `pipelined admin create-console-user` does, and returns its password.
func createUser(base, name string) string {
	adm := &admin.Client{Endpoint: base, Region: "us-east-1", HTTP: http.DefaultClient,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")}
	out := must(adm.CreateConsoleUser(context.Background(), &admin.CreateConsoleUserInput{Name: name, Role: "operator"}))
	return out.GeneratedPassword
}

type browser struct {
	base string
	c    *http.Client
}

func newBrowser(base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{base: base, c: &http.Client{Jar: jar, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) signIn(name, pw string) {
	r, err := b.c.PostForm(b.base+"/console/signin", url.Values{"name": {name}, "password": {pw}})
	if err != nil || r.StatusCode != http.StatusSeeOther {
		log.Fatalf("sign-in: %v %v", err, r)
	}
	r.Body.Close()
}

func measurePage(b *browser, path string, n int) []time.Duration {
	var out []time.Duration
	for i := range n + 5 {
		start := time.Now()
		r, err := b.c.Get(b.base + path)
		if err != nil {
			log.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != 200 {
			log.Fatalf("%s: HTTP %d", path, r.StatusCode)
		}
		if i >= 5 { // warm-up
			out = append(out, time.Since(start))
		}
	}
	return out
}

// measureLive times DisableStageTransition (through the API) to the
// update event on an open pipeline page that shows its reason.
func measureLive(ctx context.Context, b *browser, c *codepipeline.Client, n int) []time.Duration {
	r, err := b.c.Get(b.base + "/console/pipelines/p00001/live")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Body.Close()
	events := make(chan string, 64)
	go readEvents(r.Body, events)
	<-events // the first render
	var out []time.Duration
	for i := range n {
		reason := fmt.Sprintf("bench-change-%d", i)
		start := time.Now()
		_ = must(c.DisableStageTransition(ctx, &codepipeline.DisableStageTransitionInput{PipelineName: aws.String("p00001"), StageName: aws.String("Gate"),
			TransitionType: types.StageTransitionTypeInbound, Reason: aws.String(reason)}))
		for {
			select {
			case e := <-events:
				if !strings.Contains(e, reason) {
					continue
				}
				out = append(out, time.Since(start))
			case <-time.After(30 * time.Second):
				log.Fatalf("change %d never reached the page", i)
			}
			break
		}
		_ = must(c.EnableStageTransition(ctx, &codepipeline.EnableStageTransitionInput{PipelineName: aws.String("p00001"), StageName: aws.String("Gate"),
			TransitionType: types.StageTransitionTypeInbound}))
	}
	return out
}

func readEvents(body io.Reader, events chan<- string) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	var ev strings.Builder
	for sc.Scan() {
		if sc.Text() == "" {
			if strings.Contains(ev.String(), "event: update") {
				events <- ev.String()
			}
			ev.Reset()
			continue
		}
		ev.WriteString(sc.Text() + "\n")
	}
}

type memResult struct{ rssBefore, rssWith, gBefore, gWith float64 }

// measurePages opens n live pages (each its own connection) on different
// pipelines and reads the server's RSS and goroutines before and with them.
func measurePages(base string, b *browser, n int) memResult {
	var m memResult
	time.Sleep(time.Second)
	m.rssBefore, m.gBefore = metric(base, "process_resident_memory_bytes"), metric(base, "go_goroutines")
	var bodies []io.Closer
	for i := range n {
		tr := &http.Transport{}
		c := &http.Client{Jar: b.c.Jar, Transport: tr}
		r, err := c.Get(fmt.Sprintf("%s/console/pipelines/p%05d/live", base, 100+i))
		if err != nil {
			log.Fatal(err)
		}
		events := make(chan string, 4)
		go readEvents(r.Body, events)
		<-events
		bodies = append(bodies, r.Body)
	}
	time.Sleep(2 * time.Second)
	m.rssWith, m.gWith = metric(base, "process_resident_memory_bytes"), metric(base, "go_goroutines")
	for _, b := range bodies {
		b.Close()
	}
	return m
}

var metricLine = regexp.MustCompile(`(?m)^(\w+) ([0-9.e+]+)$`)

func metric(base, name string) float64 {
	r, err := http.Get(base + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	for _, m := range metricLine.FindAllStringSubmatch(string(body), -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	log.Fatalf("metric %s not found", name)
	return 0
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[min(i, len(s))-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
