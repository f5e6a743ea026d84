// Command logbench measures how fast a job's output reaches the store: a
// 100 MB log sent the way a remote runner sends it (PUT
// /runner/v1/jobs/{jobId}/log, 1 MiB pieces, one in flight, each waiting
// for its acknowledgement) to a pipelined server in its own process, beside
// the rate at which `cat` writes the same bytes to a file on this machine,
// measured in the same run. It also reports the server's peak resident
// memory (VmHWM) over the run. See bench/README.md.
//
//	go run ./bench/cmd/logbench [-size 100] [-postgres DSN]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
)

const (
	akid   = "PLAKLOGBENCH00000000"
	secret = "logbench-secret-key-0123456789abcdefABCDEF"
	piece  = 1 << 20
)

func main() {
	sizeMB := flag.Int("size", 100, "size of the log in MB")
	pg := flag.String("postgres", "", "also measure on this PostgreSQL (a DSN)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "logbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	bin := filepath.Join(dir, "pipelined")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/pipelined").CombinedOutput(); err != nil {
		log.Fatalf("go build: %v\n%s", err, out)
	}
	src := filepath.Join(dir, "build.log")
	size := writeLog(src, *sizeMB<<20)

	catRate, catCPU := catRate(src, filepath.Join(dir, "cat.out"), size)
	fmt.Printf("| what | MB/s (wall) | ratio to cat | CPU seconds | CPU ratio (cat / it) | server peak RSS (VmHWM) |\n|---|--:|--:|--:|--:|--:|\n")
	fmt.Printf("| `cat` %d MB to a file (best of 3) | %.0f | 1.00 | %.3f | 1.00 | |\n", *sizeMB, catRate, catCPU)
	backends := []string{""}
	if *pg != "" {
		backends = append(backends, *pg)
	}
	for _, db := range backends {
		name := "SQLite"
		if db != "" {
			name = "PostgreSQL"
		}
		rate, cpu, hwm := serverRate(bin, filepath.Join(dir, "data-"+name), db, src, size)
		fmt.Printf("| PUT log, %s: %d MB in 1 MiB pieces, one in flight | %.0f | %.2f | %.3f (server) | %.2f | %d MB |\n", name, *sizeMB, rate, rate/catRate, cpu, catCPU/cpu, hwm>>20)
	}
}

// writeLog writes a build-like log of about n bytes: lines of varying
// length with a counter, a level and some words.
func writeLog(path string, n int) int64 {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	words := strings.Fields("compiling linking module package test PASS ok cache hit miss fetched resolved warning deprecated vendor build step artifact upload")
	r := rand.New(rand.NewPCG(1, 2))
	written := 0
	for i := 0; written < n; i++ {
		line := fmt.Sprintf("2026-12-03T19:%02d:%02d.%03dZ INFO [step %d]", i/60000%60, i/1000%60, i%1000, i%97)
		for k := 0; k < 4+r.IntN(12); k++ {
			line += " " + words[r.IntN(len(words))]
		}
		line += "\n"
		written += len(line)
		_, _ = w.WriteString(line)
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	f.Close()
	return int64(written)
}

// catRate is the best of three `cat src > dst` runs, in MB/s, and the CPU
// time (user + system) of that run.
func catRate(src, dst string, size int64) (float64, float64) {
	best, cpu := time.Duration(1<<62), 0.0
	for range 3 {
		out, err := os.Create(dst)
		if err != nil {
			log.Fatal(err)
		}
		cmd := exec.Command("cat", src)
		cmd.Stdout = out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			log.Fatal(err)
		}
		if d := time.Since(start); d < best {
			best, cpu = d, (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		}
		out.Close()
	}
	return float64(size) / (1 << 20) / best.Seconds(), cpu
}

// serverRate starts a server, gives it a running job and sends the log
// as a runner does; it returns MB/s, the server's CPU seconds over the
// sending and its peak RSS.
func serverRate(bin, dataDir, db, src string, size int64) (float64, float64, int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", dataDir, "--log-level", "warn")
	if db != "" {
		cmd.Args = append(cmd.Args, "--database", db)
	}
	cmd.Env = append(os.Environ(), "PIPELINED_ROOT_ACCESS_KEY_ID="+akid, "PIPELINED_ROOT_SECRET_ACCESS_KEY="+secret)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	url := "http://" + addr
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url + "/healthz"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if time.Since(start) > time.Minute {
			log.Fatal("server not ready")
		}
	}
	jobID, nonce := runningJob(url)

	f, err := os.Open(src)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	client := &http.Client{}
	buf := make([]byte, piece)
	off := int64(0)
	cpu0 := cpuSeconds(cmd.Process.Pid)
	start := time.Now()
	for {
		n, err := io.ReadFull(f, buf)
		if n == 0 {
			break
		}
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/runner/v1/jobs/%s/log?offset=%d", url, jobID, off), bytes.NewReader(buf[:n]))
		req.Header.Set("Authorization", "Bearer "+jobID+":"+nonce)
		resp, rerr := client.Do(req)
		if rerr != nil {
			log.Fatal(rerr)
		}
		var a struct {
			Acked int64 `json:"ackedLength"`
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || json.Unmarshal(body, &a) != nil || a.Acked != off+int64(n) {
			log.Fatalf("PUT at %d: %d %s", off, resp.StatusCode, body)
		}
		off = a.Acked
		if err != nil {
			break
		}
	}
	took := time.Since(start)
	cpu := cpuSeconds(cmd.Process.Pid) - cpu0
	if off != size {
		log.Fatalf("stored %d of %d bytes", off, size)
	}
	return float64(size) / (1 << 20) / took.Seconds(), cpu, peakRSS(cmd.Process.Pid)
}

// cpuSeconds is a process's user + system CPU time (/proc/PID/stat, in
// clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		log.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// runningJob creates a custom action type and a pipeline, and polls and
// acknowledges its first job.
func runningJob(url string) (string, string) {
	ctx := context.Background()
	c := codepipeline.New(codepipeline.Options{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
	src := &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerCustom, Provider: aws.String("LogBench"), Version: aws.String("1")}
	if _, err := c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{Category: src.Category, Provider: src.Provider, Version: src.Version,
		InputArtifactDetails: &types.ArtifactDetails{}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1}}); err != nil {
		log.Fatal(err)
	}
	stage := func(n string, a types.ActionDeclaration) types.StageDeclaration {
		return types.StageDeclaration{Name: aws.String(n), Actions: []types.ActionDeclaration{a}}
	}
	_, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: &types.PipelineDeclaration{
		Name: aws.String("logbench"), RoleArn: aws.String("arn:aws:iam::000000000000:role/r"),
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			stage("Source", types.ActionDeclaration{Name: aws.String("Src"), ActionTypeId: src, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Out")}}}),
			stage("Approve", types.ActionDeclaration{Name: aws.String("Gate"), ActionTypeId: &types.ActionTypeId{Category: types.ActionCategoryApproval, Owner: types.ActionOwnerAws, Provider: aws.String("Manual"), Version: aws.String("1")}}),
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for range 100 {
		out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: src, MaxBatchSize: aws.Int32(1)})
		if err != nil {
			log.Fatal(err)
		}
		if len(out.Jobs) == 1 {
			j := out.Jobs[0]
			if _, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: j.Id, Nonce: j.Nonce}); err != nil {
				log.Fatal(err)
			}
			return *j.Id, *j.Nonce
		}
	}
	log.Fatal("no job")
	return "", ""
}

func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
