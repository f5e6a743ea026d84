package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

var rootCreds = aws.Credentials{AccessKeyID: servertest.AccessKeyID, SecretAccessKey: servertest.SecretAccessKey}

// rawRequest is the head of a request to the JSON API, signed (when creds
// are given) over body as aws-sdk-go-v2 signs, or with a signature that
// names a known key but is wrong (badSig), or unsigned.
func rawRequest(t *testing.T, host, target string, body []byte, contentLength int64, creds *aws.Credentials, badSig bool) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+host+"/", nil)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "CodePipeline_20150709."+target)
	req.ContentLength = contentLength
	if creds != nil {
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(context.Background(), *creds, req, hex.EncodeToString(sum[:]), "codepipeline", servertest.Region, time.Now()); err != nil {
			t.Fatal(err)
		}
		if badSig {
			a := req.Header.Get("Authorization")
			req.Header.Set("Authorization", a[:len(a)-8]+"00000000")
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST / HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", host, contentLength)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestSlowConnectionsHoldBoundedMemory holds 200 slow connections against a
// server with the default limits: a third trickle their headers a byte at a
// time, a third send an unsigned 4 MiB CreatePipeline body but its last
// byte, a third the same signed with the root access key id but a wrong
// signature (which passes every check that needs no body). The server's
// heap must stay far below what buffering them would take (200 × 4 MiB),
// and signed requests from aws-sdk-go-v2 must be served while they are
// held.
func TestSlowConnectionsHoldBoundedMemory(t *testing.T) {
	srv, c := engineServer(t, servertest.Options(func(*server.Config) {}))
	ctx := context.Background()
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: gatePipeline("held", "")}); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	before := heapInUse()

	const n = 200
	const size = 4 << 20
	big := bytes.Repeat([]byte("x"), size-1)
	stop := make(chan struct{})
	var conns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	dial := func() net.Conn {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		conns = append(conns, conn)
		mu.Unlock()
		return conn
	}
	defer func() {
		close(stop)
		for _, conn := range conns {
			conn.Close()
		}
	}()
	unsignedHead := rawRequest(t, host, "CreatePipeline", nil, size, nil, false)
	badSigHead := rawRequest(t, host, "CreatePipeline", append(big, 'x'), size, &rootCreds, true)
	var bodyConns []net.Conn
	for i := range n {
		conn := dial()
		switch i % 3 {
		case 0: // trickles its request line and headers
			go func() {
				head := "POST / HTTP/1.1\r\nHost: " + host + "\r\nX-Amz-Target: CodePipeline_20150709.ListPipelines\r\n"
				for i := 0; ; i = (i + 1) % len(head) {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
					}
					if _, err := conn.Write([]byte{head[i]}); err != nil {
						return
					}
				}
			}()
		default: // a 4 MiB body but its last byte
			head := unsignedHead
			if i%3 == 2 {
				head = badSigHead
			}
			bodyConns = append(bodyConns, conn)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = conn.SetWriteDeadline(time.Now().Add(60 * time.Second))
				if _, err := conn.Write(head); err == nil {
					_, _ = conn.Write(big) // fails once the server has answered and closed
				}
			}()
		}
	}
	wg.Wait() // every body sent, or refused by the server
	held := heapInUse()
	growth := int64(held) - int64(before)
	t.Logf("heap in use: %d MiB before, %d MiB with %d slow connections held (growth %d MiB; buffering them all would take %d MiB)",
		before>>20, held>>20, n, growth>>20, n*2/3*size>>20)
	if growth > 160<<20 {
		t.Errorf("the heap grew by %d MiB with %d slow connections held; want it bounded well below %d MiB", growth>>20, n, n*2/3*size>>20)
	}

	// Signed requests are served while the connections are held.
	fresh := codepipeline.New(codepipeline.Options{Region: servertest.Region, BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, ""), RetryMaxAttempts: 1})
	for i := range 20 {
		got, err := fresh.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("held")})
		if err != nil || aws.ToString(got.Pipeline.Name) != "held" {
			t.Fatalf("GetPipeline %d while slow connections are held: %v", i, err)
		}
		if _, err := fresh.ListPipelines(ctx, &codepipeline.ListPipelinesInput{}); err != nil {
			t.Fatalf("ListPipelines %d while slow connections are held: %v", i, err)
		}
	}
	if _, err := fresh.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: gatePipeline("made-while-held", "")}); err != nil {
		t.Fatalf("CreatePipeline while slow connections are held: %v", err)
	}

	// What the body senders were told: unsigned ones are refused from
	// their headers; signed ones are read until the budget for unverified
	// bodies is spent, and beyond it answered 503.
	codes := map[string]int{}
	var cmu sync.Mutex
	var rg sync.WaitGroup
	for _, conn := range bodyConns {
		rg.Add(1)
		go func() {
			defer rg.Done()
			_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			code := "no answer yet (held)"
			if err == nil {
				var e struct {
					Type string `json:"__type"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&e)
				code = fmt.Sprintf("%d %s", resp.StatusCode, e.Type)
			}
			cmu.Lock()
			codes[code]++
			cmu.Unlock()
		}()
	}
	rg.Wait()
	t.Logf("answers to the body senders: %v", codes)
	if codes["400 MissingAuthenticationTokenException"] < len(bodyConns)/2 {
		t.Errorf("unsigned 4 MiB bodies were not all refused from their headers: %v", codes)
	}
	if codes["503 ServiceUnavailableException"] == 0 {
		t.Errorf("no request beyond the unverified-body budget was answered 503: %v", codes)
	}
}

// TestTricklingRequestsAreCutOff: a request whose headers or body trickle
// in is cut off at the read timeout; a long poll, which waits after its
// body is read, is not; a big S3 upload that keeps a good rate may take
// longer than the read timeout, one below the minimum rate may not.
func TestTricklingRequestsAreCutOff(t *testing.T) {
	srv, c := engineServer(t, servertest.Options(func(*server.Config) {}), func(cfg *server.Config) {
		cfg.Limits.ReadTimeout = time.Second
		cfg.Limits.MinBodyRate = 256 << 10
		cfg.JobPollWait = 3 * time.Second
	})
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	// Headers a byte every 100ms: closed after about a second.
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := make(chan time.Time, 1)
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		closed <- time.Now()
	}()
	start := time.Now()
	head := "POST / HTTP/1.1\r\nHost: " + host + "\r\nX-Amz-Target: CodePipeline_20150709.ListPipelines\r\nX-Padding: " + strings.Repeat("p", 200)
	select {
	case at := <-closed:
		t.Fatalf("closed after %v before anything was sent", at.Sub(start))
	default:
	}
	cut := false
	for i := 0; i < len(head) && !cut; i++ {
		if _, err := conn.Write([]byte{head[i]}); err != nil {
			cut = true
			break
		}
		select {
		case at := <-closed:
			t.Logf("a request trickling its headers was closed after %v (read timeout 1s)", at.Sub(start))
			cut = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !cut {
		t.Fatalf("a request trickling its headers for %v was not cut off (read timeout 1s)", time.Since(start))
	}

	// A signed body trickling: answered 408 RequestTimeoutException.
	body := []byte(`{"maxResults": 10, "nextToken": null}`)
	conn2, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err := conn2.Write(rawRequest(t, host, "ListPipelines", body, int64(len(body)), &rootCreds, false)); err != nil {
		t.Fatal(err)
	}
	go func() {
		for _, b := range body[:len(body)-1] {
			if _, err := conn2.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	_ = conn2.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn2), nil)
	if err != nil {
		t.Fatalf("a trickling body got no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "RequestTimeoutException") {
		t.Errorf("a trickling body was answered %d %s, want 408 RequestTimeoutException", resp.StatusCode, b)
	}

	// A long poll outlives the read timeout: it waits after its body.
	pollStart := time.Now()
	out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: srcType})
	if err != nil || len(out.Jobs) != 0 {
		t.Fatalf("an idle long poll with a 1s read timeout: %v, %d jobs", err, len(out.Jobs))
	}
	if waited := time.Since(pollStart); waited < 2900*time.Millisecond {
		t.Errorf("an idle long poll answered after %v, want the 3s poll wait (cut short by the read timeout?)", waited)
	}

	// S3: a 4 MiB upload at about 2 MiB/s takes twice the read timeout and
	// succeeds; one at 64 KiB/s (below the 256 KiB/s minimum) is cut off.
	root := s3.New(s3.Options{Region: servertest.Region, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials:                credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired})
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("slow")}); err != nil {
		t.Fatal(err)
	}
	upload := func(rate int) error {
		data := bytes.Repeat([]byte("y"), 4<<20)
		_, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("slow"), Key: aws.String("k"),
			Body: &paced{r: bytes.NewReader(data), rate: rate, start: time.Now()}, ContentLength: aws.Int64(int64(len(data)))},
			s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
		return err
	}
	upStart := time.Now()
	if err := upload(2 << 20); err != nil {
		t.Fatalf("a 4 MiB upload at 2 MiB/s: %v", err)
	}
	t.Logf("a 4 MiB upload at 2 MiB/s took %v with a 1s read timeout", time.Since(upStart))
	err = upload(64 << 10)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "RequestTimeout" {
		t.Errorf("a 4 MiB upload at 64 KiB/s (minimum 256 KiB/s): %v, want RequestTimeout", err)
	}
}

// paced reads at about rate bytes per second.
type paced struct {
	r     io.Reader
	rate  int
	start time.Time
	n     int
}

func (p *paced) Read(b []byte) (int, error) {
	if len(b) > p.rate/10 {
		b = b[:p.rate/10]
	}
	due := p.start.Add(time.Duration(float64(p.n) / float64(p.rate) * float64(time.Second)))
	time.Sleep(time.Until(due))
	n, err := p.r.Read(b)
	p.n += n
	return n, err
}

// TestConnectionCap: beyond the connection cap, requests are answered 503
// in their protocol's shape (AWS JSON for the API, S3 XML for S3), and
// served again once connections close.
func TestConnectionCap(t *testing.T) {
	srv := servertest.Start(t, func(cfg *server.Config) { cfg.Limits.MaxConnections = 3 })
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	var held []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	// The SDK clients each dial a new connection.
	api := func() *codepipeline.Client {
		return codepipeline.New(codepipeline.Options{Region: servertest.Region, BaseEndpoint: aws.String(srv.URL),
			Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, ""), RetryMaxAttempts: 1,
			HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	}
	_, err := api().ListPipelines(ctx, &codepipeline.ListPipelinesInput{})
	var re *smithyhttp.ResponseError
	var ae smithy.APIError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable || !errors.As(err, &ae) || ae.ErrorCode() != "ServiceUnavailableException" {
		t.Fatalf("an API request beyond the connection cap: %v, want 503 ServiceUnavailableException", err)
	}
	s3c := s3.New(s3.Options{Region: servertest.Region, BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, ""),
		HTTPClient:  &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	_, err = s3c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable || !errors.As(err, &ae) || ae.ErrorCode() != "ServiceUnavailable" {
		t.Fatalf("an S3 request beyond the connection cap: %v, want 503 ServiceUnavailable", err)
	}
	stsc := sts.New(sts.Options{Region: servertest.Region, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, ""),
		HTTPClient:  &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
	_, err = stsc.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable || !errors.As(err, &ae) || ae.ErrorCode() != "ServiceUnavailable" {
		t.Fatalf("an STS request beyond the connection cap: %v, want 503 ServiceUnavailable", err)
	}
	for _, conn := range held {
		conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := api().ListPipelines(ctx, &codepipeline.ListPipelinesInput{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests still refused after the held connections closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAPIBodyLimits: a body larger than its operation takes is refused from
// its Content-Length, before any of it is read: 1 MiB for most operations,
// 4 MiB (--max-api-body) for pipeline and action type definitions.
func TestAPIBodyLimits(t *testing.T) {
	srv := servertest.Start(t)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		target string
		size   int64
		want   int
	}{
		{"ListPipelines", 1<<20 + 1, http.StatusRequestEntityTooLarge},
		{"CreatePipeline", 4<<20 + 1, http.StatusRequestEntityTooLarge},
		{"CreatePipeline", 2 << 20, 0}, // within the limit: the server waits for the body
	} {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write(rawRequest(t, host, tc.target, nil, tc.size, &rootCreds, false)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if tc.want == 0 {
			if err == nil {
				t.Errorf("%s with a %d-byte body within its limit was answered %d before the body arrived", tc.target, tc.size, resp.StatusCode)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s with a %d-byte body: no answer before the body: %v\n%s", tc.target, tc.size, err, srv.Logs())
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.want || !strings.Contains(string(b), "RequestEntityTooLargeException") {
			t.Errorf("%s with a %d-byte body: %d %s, want %d RequestEntityTooLargeException", tc.target, tc.size, resp.StatusCode, b, tc.want)
		}
	}
}
