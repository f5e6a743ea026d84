package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/server/servertest"
)

// terraformMirror is where the test looks for a filesystem mirror of the
// hashicorp/aws provider (PIPELINED_TF_PLUGIN_MIRROR overrides it).
const terraformMirror = "/opt/tf-plugins"

// findTerraform returns the terraform binary and a provider mirror holding
// hashicorp/aws, or skips the test saying what it looked for.
func findTerraform(t *testing.T) (bin, mirror string) {
	t.Helper()
	bin, err := exec.LookPath("terraform")
	if err != nil {
		if _, serr := os.Stat("/usr/local/bin/terraform"); serr != nil {
			t.Skip("terraform not found: looked in PATH and /usr/local/bin/terraform")
		}
		bin = "/usr/local/bin/terraform"
	}
	mirror = os.Getenv("PIPELINED_TF_PLUGIN_MIRROR")
	if mirror == "" {
		mirror = terraformMirror
	}
	if _, err := os.Stat(filepath.Join(mirror, "registry.terraform.io", "hashicorp", "aws")); err != nil {
		t.Skipf("no filesystem mirror of the hashicorp/aws provider: looked for %s (set PIPELINED_TF_PLUGIN_MIRROR to another)",
			filepath.Join(mirror, "registry.terraform.io", "hashicorp", "aws"))
	}
	return bin, mirror
}

// readmeProviderBlock is the Terraform provider block of README.md, as a
// user copies it.
func readmeProviderBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```hcl\n(provider \"aws\" \\{.*?\n\\})\n```").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no ```hcl provider \"aws\" block")
	}
	return string(m[1])
}

const terraformResources = `
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

resource "aws_codepipeline_custom_action_type" "build" {
  category      = "Build"
  provider_name = "TfBuild"
  version       = "1"
  input_artifact_details {
    minimum_count = 1
    maximum_count = 1
  }
  output_artifact_details {
    minimum_count = 0
    maximum_count = 1
  }
  configuration_property {
    name        = "Project"
    description = "the project to build"
    key         = true
    required    = true
    secret      = false
    queryable   = true
    type        = "String"
  }
  settings {
    entity_url_template    = "https://ci.example.com/projects/{Config:Project}"
    execution_url_template = "https://ci.example.com/builds/{ExternalExecutionId}"
  }
  tags = { team = "platform" }
}

resource "aws_codepipeline" "web" {
  name     = "tf-web"
  role_arn = "arn:aws:iam::123456789012:role/pipelined"
  artifact_store {
    location = "artifacts"
    type     = "S3"
  }
  stage {
    name = "Source"
    action {
      name             = "Fetch"
      category         = "Source"
      owner            = "AWS"
      provider         = "S3"
      version          = "1"
      output_artifacts = ["App"]
      configuration = {
        S3Bucket             = "sources"
        S3ObjectKey          = "app.zip"
        PollForSourceChanges = "false"
      }
    }
  }
  stage {
    name = "Build"
    action {
      name             = "Build"
      category         = "Build"
      owner            = "Custom"
      provider         = aws_codepipeline_custom_action_type.build.provider_name
      version          = aws_codepipeline_custom_action_type.build.version
      input_artifacts  = ["App"]
      output_artifacts = ["Built"]
      configuration = {
        Project = "web"
      }
    }
  }
  stage {
    name = "Approve"
    action {
      name     = "Gate"
      category = "Approval"
      owner    = "AWS"
      provider = "Manual"
      version  = "1"
      configuration = {
        CustomData = "Ship it?"
      }
    }
  }
  tags = {
    team = "platform"
    env  = "test"
  }
}
`

// TestTerraform applies the README's provider block with the real
// Terraform and AWS provider: a pipeline with a custom action type, a
// manual approval and tags; a second plan shows no drift; destroy leaves
// nothing behind.
func TestTerraform(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Terraform and its AWS provider; skipped with -short")
	}
	bin, mirror := findTerraform(t)
	srv := servertest.Start(t)
	ctx := context.Background()
	dir := t.TempDir()

	creds := filepath.Join(dir, "credentials")
	if err := os.WriteFile(creds, []byte(fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
		servertest.AccessKeyID, servertest.SecretAccessKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	provider := readmeProviderBlock(t)
	provider = strings.ReplaceAll(provider, "http://127.0.0.1:8480", srv.URL)
	provider = strings.ReplaceAll(provider, "./pipelined-data/credentials", creds)
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(provider+"\n"+terraformResources), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := filepath.Join(dir, "terraform.rc")
	if err := os.WriteFile(cli, []byte(fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.terraform.io/hashicorp/aws"]
  }
}
`, mirror)), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	// Only what a user's shell would hold for this: no AWS_* from the
	// machine running the test.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TF_CLI_CONFIG_FILE=" + cli,
		"TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1", "TF_DATA_DIR=" + filepath.Join(dir, ".terraform")}
	run := func(wantExit int, args ...string) string {
		t.Helper()
		// Each command starts the provider (a 700 MB binary with a large
		// schema) once or more: seconds on an idle machine, minutes on a
		// loaded one.
		cctx, cancel := context.WithTimeout(ctx, 12*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, bin, args...)
		cmd.Dir, cmd.Env = dir, env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("terraform %s: %s", args[0], time.Since(start).Round(time.Millisecond))
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if code != wantExit {
			t.Fatalf("terraform %s exited %d, want %d:\n%s\nserver log:\n%s", strings.Join(args, " "), code, wantExit, out, lastLines(srv.Logs(), 40))
		}
		return string(out)
	}

	run(0, "init", "-input=false", "-no-color")
	run(0, "apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=2")

	c := srv.Client()
	p, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("tf-web")})
	if err != nil {
		t.Fatalf("the pipeline Terraform created: %v", err)
	}
	if n := len(p.Pipeline.Stages); n != 3 || aws.ToString(p.Pipeline.Stages[2].Actions[0].ActionTypeId.Provider) != "Manual" {
		t.Fatalf("pipeline stages: %+v", p.Pipeline.Stages)
	}
	tags, err := c.ListTagsForResource(ctx, &codepipeline.ListTagsForResourceInput{ResourceArn: p.Metadata.PipelineArn})
	if err != nil || len(tags.Tags) != 2 {
		t.Fatalf("pipeline tags: %+v %v", tags, err)
	}

	run(0, "plan", "-detailed-exitcode", "-input=false", "-no-color", "-parallelism=2")
	run(0, "destroy", "-auto-approve", "-input=false", "-no-color", "-parallelism=2")

	// What the provider got refused (retries slow it down): for the log.
	for _, line := range strings.Split(srv.Logs(), "\n") {
		if strings.Contains(line, "request failed") {
			t.Log(line)
		}
	}

	list, err := c.ListPipelines(ctx, &codepipeline.ListPipelinesInput{})
	if err != nil || len(list.Pipelines) != 0 {
		t.Fatalf("pipelines after destroy: %+v %v", list, err)
	}
	types_, err := c.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: types.ActionOwnerCustom})
	if err != nil || len(types_.ActionTypes) != 0 {
		t.Fatalf("custom action types after destroy: %+v %v", types_, err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
