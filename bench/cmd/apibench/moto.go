package main

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
)

// motoRoleName is the IAM role created in moto for its pipelines. moto's
// CreatePipeline refuses a roleArn that is not a role in its own IAM trusting
// codepipeline.amazonaws.com, so the moto pipelines differ from the others in
// roleArn only (and moto's account id is in it).
const motoRoleName = "pipelined"

const motoTrustPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",` +
	`"Principal":{"Service":"codepipeline.amazonaws.com"},"Action":"sts:AssumeRole"}]}`

// startMoto starts moto_server, waits until it answers a signed
// ListPipelines, and creates the IAM role its pipelines need. It returns the
// role's ARN.
func (b *bench) startMoto(ctx context.Context) (*server, string, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, "", fmt.Errorf("moto_server not found (run with -moto=false to skip it): %w", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", err
	}
	p, err := b.procs.start("moto_server", filepath.Join(b.tmp, "moto.log"), nil, bin, "-H", host, "-p", port)
	if err != nil {
		return nil, "", err
	}
	srv := &server{proc: p, url: "http://" + addr}
	c := newClient(1, srv.url)
	defer c.close()
	ready := func(ctx context.Context) error {
		_, err := c.call(ctx, listReq)
		return err
	}
	if err := p.waitReady(ctx, ready); err != nil {
		return nil, "", errors.Join(err, p.stop())
	}
	arn, err := motoCreateRole(ctx, c)
	if err != nil {
		return nil, "", errors.Join(fmt.Errorf("moto: create IAM role: %w", err), p.stop())
	}
	b.report.notes = append(b.report.notes, fmt.Sprintf(
		"moto: its CreatePipeline requires the roleArn to be an IAM role in moto that trusts "+
			"codepipeline.amazonaws.com, so apibench creates one (signed IAM CreateRole) and the moto "+
			"pipelines use roleArn %s; otherwise they are docs/example-pipeline.json unchanged.", arn))
	return srv, arn, nil
}

// motoCreateRole creates motoRoleName with IAM's query protocol and returns
// its ARN.
func motoCreateRole(ctx context.Context, c *client) (string, error) {
	form := url.Values{
		"Action":                   {"CreateRole"},
		"Version":                  {"2010-05-08"},
		"RoleName":                 {motoRoleName},
		"AssumeRolePolicyDocument": {motoTrustPolicy},
	}
	body, err := c.call(ctx, request{
		service:     "iam",
		contentType: "application/x-www-form-urlencoded; charset=utf-8",
		body:        []byte(form.Encode()),
	})
	if err != nil {
		return "", err
	}
	var out struct {
		Arn string `xml:"CreateRoleResult>Role>Arn"`
	}
	if err := xml.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("decode CreateRole response: %w", err)
	}
	if out.Arn == "" {
		return "", fmt.Errorf("CreateRole response has no Arn: %.200s", body)
	}
	return out.Arn, nil
}
