package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// examplePipeline is a three-stage pipeline of built-in action types:
// S3 source, manual approval, S3 deploy.
func examplePipeline(name string) *types.PipelineDeclaration {
	return &types.PipelineDeclaration{
		Name:    aws.String(name),
		RoleArn: aws.String("arn:aws:iam::123456789012:role/pipelined"),
		ArtifactStore: &types.ArtifactStore{
			Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts"),
		},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{
				Name:            aws.String("Fetch"),
				ActionTypeId:    &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")},
				Configuration:   map[string]string{"S3Bucket": "src", "S3ObjectKey": "app.zip", "PollForSourceChanges": "false"},
				OutputArtifacts: []types.OutputArtifact{{Name: aws.String("App")}},
			}}},
			{Name: aws.String("Approve"), Actions: []types.ActionDeclaration{{
				Name:          aws.String("Gate"),
				ActionTypeId:  &types.ActionTypeId{Category: types.ActionCategoryApproval, Owner: types.ActionOwnerAws, Provider: aws.String("Manual"), Version: aws.String("1")},
				Configuration: map[string]string{"CustomData": "ship it?"},
			}}},
			{Name: aws.String("Deploy"), Actions: []types.ActionDeclaration{{
				Name:           aws.String("ToBucket"),
				ActionTypeId:   &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")},
				Configuration:  map[string]string{"BucketName": "site", "Extract": "true"},
				InputArtifacts: []types.InputArtifact{{Name: aws.String("App")}},
			}}},
		},
	}
}

// apiCode returns the AWS error code of err ("" when err is nil).
func apiCode(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("not an API error: %v", err)
	}
	return ae.ErrorCode()
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := apiCode(t, err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func TestPipelineLifecycle(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend)
		c := srv.Client()
		ctx := context.Background()

		created, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{
			Pipeline: examplePipeline("web"),
			Tags:     []types.Tag{{Key: aws.String("team"), Value: aws.String("platform")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if v := aws.ToInt32(created.Pipeline.Version); v != 1 {
			t.Errorf("created version = %d, want 1", v)
		}
		if created.Pipeline.PipelineType != types.PipelineTypeV1 || created.Pipeline.ExecutionMode != types.ExecutionModeSuperseded {
			t.Errorf("defaults: type %q mode %q", created.Pipeline.PipelineType, created.Pipeline.ExecutionMode)
		}
		if ro := aws.ToInt32(created.Pipeline.Stages[0].Actions[0].RunOrder); ro != 1 {
			t.Errorf("default runOrder = %d, want 1", ro)
		}

		got, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("web")})
		if err != nil {
			t.Fatal(err)
		}
		if arn := aws.ToString(got.Metadata.PipelineArn); arn != "arn:aws:codepipeline:us-east-1:123456789012:web" {
			t.Errorf("pipelineArn = %q", arn)
		}
		if got.Metadata.Created == nil || got.Metadata.Updated == nil || got.Metadata.Created.IsZero() {
			t.Errorf("metadata times missing: %+v", got.Metadata)
		}
		if cfg := got.Pipeline.Stages[1].Actions[0].Configuration["CustomData"]; cfg != "ship it?" {
			t.Errorf("configuration lost: %q", cfg)
		}

		// Update: version 2, version 1 still readable, created unchanged.
		next := got.Pipeline
		next.Stages[1].Actions[0].Configuration["CustomData"] = "really ship it?"
		upd, err := c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: next})
		if err != nil {
			t.Fatal(err)
		}
		if v := aws.ToInt32(upd.Pipeline.Version); v != 2 {
			t.Fatalf("updated version = %d, want 2", v)
		}
		v1, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("web"), Version: aws.Int32(1)})
		if err != nil {
			t.Fatal(err)
		}
		if cfg := v1.Pipeline.Stages[1].Actions[0].Configuration["CustomData"]; cfg != "ship it?" || aws.ToInt32(v1.Pipeline.Version) != 1 {
			t.Errorf("version 1 changed: %q v%d", cfg, aws.ToInt32(v1.Pipeline.Version))
		}
		latest, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("web")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(latest.Pipeline.Version) != 2 || !latest.Metadata.Created.Equal(*got.Metadata.Created) {
			t.Errorf("latest v%d created %v (was %v)", aws.ToInt32(latest.Pipeline.Version), latest.Metadata.Created, got.Metadata.Created)
		}
		_, err = c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("web"), Version: aws.Int32(3)})
		wantCode(t, err, "PipelineVersionNotFoundException")

		// An update based on a stale version loses instead of overwriting.
		stale := v1.Pipeline
		_, err = c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: stale})
		wantCode(t, err, "ConcurrentModificationException")

		// Tags given at creation are listed.
		tags, err := c.ListTagsForResource(ctx, &codepipeline.ListTagsForResourceInput{ResourceArn: got.Metadata.PipelineArn})
		if err != nil {
			t.Fatal(err)
		}
		if len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" || aws.ToString(tags.Tags[0].Value) != "platform" {
			t.Errorf("tags = %+v", tags.Tags)
		}

		// Delete removes every version and the tags.
		if _, err := c.DeletePipeline(ctx, &codepipeline.DeletePipelineInput{Name: aws.String("web")}); err != nil {
			t.Fatal(err)
		}
		_, err = c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("web")})
		wantCode(t, err, "PipelineNotFoundException")
		_, err = c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("web"), Version: aws.Int32(1)})
		wantCode(t, err, "PipelineNotFoundException")
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline("web")}); err != nil {
			t.Fatal(err)
		}
		tags, err = c.ListTagsForResource(ctx, &codepipeline.ListTagsForResourceInput{ResourceArn: got.Metadata.PipelineArn})
		if err != nil || len(tags.Tags) != 0 {
			t.Errorf("re-created pipeline inherited tags: %+v %v", tags, err)
		}
	})
}

func TestCreatePipelineNameInUse(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		c := servertest.Start(t, backend).Client()
		ctx := context.Background()
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline("dup")}); err != nil {
			t.Fatal(err)
		}
		_, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline("dup")})
		var inUse *types.PipelineNameInUseException
		if !errors.As(err, &inUse) {
			t.Fatalf("err = %v, want PipelineNameInUseException", err)
		}
	})
}

func TestListPipelinesPagination(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		c := servertest.Start(t, backend).Client()
		ctx := context.Background()
		want := map[string]bool{}
		for i := range 7 {
			name := fmt.Sprintf("p-%02d", i)
			want[name] = true
			if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline(name)}); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		pages := 0
		p := codepipeline.NewListPipelinesPaginator(c, &codepipeline.ListPipelinesInput{MaxResults: aws.Int32(3)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page.Pipelines) > 3 {
				t.Fatalf("page has %d pipelines, maxResults 3", len(page.Pipelines))
			}
			for _, s := range page.Pipelines {
				names = append(names, aws.ToString(s.Name))
				if aws.ToInt32(s.Version) != 1 || s.Created == nil || s.PipelineType != types.PipelineTypeV1 {
					t.Errorf("summary incomplete: %+v", s)
				}
			}
		}
		if pages != 3 || len(names) != 7 {
			t.Fatalf("pages=%d names=%v", pages, names)
		}
		for i := 1; i < len(names); i++ {
			if names[i-1] >= names[i] {
				t.Fatalf("not in name order: %v", names)
			}
		}
		_, err := c.ListPipelines(ctx, &codepipeline.ListPipelinesInput{NextToken: aws.String("not-a-token")})
		wantCode(t, err, "InvalidNextTokenException")
		_, err = c.ListPipelines(ctx, &codepipeline.ListPipelinesInput{MaxResults: aws.Int32(1001)})
		wantCode(t, err, "ValidationException")
	})
}

func TestPipelineStructureErrors(t *testing.T) {
	c := servertest.Start(t).Client()
	ctx := context.Background()
	cases := []struct {
		name   string
		mutate func(p *types.PipelineDeclaration)
		code   string
		msg    string
	}{
		{"one stage", func(p *types.PipelineDeclaration) { p.Stages = p.Stages[:1] }, "InvalidStructureException", "between 2 and 50 stages"},
		{"51 stages", func(p *types.PipelineDeclaration) {
			for i := len(p.Stages); i < 51; i++ {
				s := p.Stages[1]
				s.Name = aws.String(fmt.Sprintf("Gate%d", i))
				s.Actions = []types.ActionDeclaration{p.Stages[1].Actions[0]}
				p.Stages = append(p.Stages, s)
			}
		}, "InvalidStructureException", "between 2 and 50 stages"},
		{"both artifact stores", func(p *types.PipelineDeclaration) {
			p.ArtifactStores = map[string]types.ArtifactStore{"us-east-1": *p.ArtifactStore}
		}, "InvalidStructureException", "artifactStore or artifactStores"},
		{"no artifact store", func(p *types.PipelineDeclaration) { p.ArtifactStore = nil }, "InvalidStructureException", "artifactStore or artifactStores"},
		{"non-source in first stage", func(p *types.PipelineDeclaration) {
			p.Stages[0].Actions = append(p.Stages[0].Actions, p.Stages[1].Actions[0])
		}, "InvalidStructureException", "first stage"},
		{"source in later stage", func(p *types.PipelineDeclaration) {
			a := p.Stages[0].Actions[0]
			a.Name = aws.String("Again")
			a.OutputArtifacts = []types.OutputArtifact{{Name: aws.String("Other")}}
			p.Stages[1].Actions = append(p.Stages[1].Actions, a)
		}, "InvalidStructureException", "only be in the first stage"},
		{"duplicate stage names", func(p *types.PipelineDeclaration) { p.Stages[2].Name = aws.String("Approve") }, "InvalidStageDeclarationException", "unique"},
		{"duplicate action names", func(p *types.PipelineDeclaration) {
			p.Stages[1].Actions = append(p.Stages[1].Actions, p.Stages[1].Actions[0])
		}, "InvalidStageDeclarationException", "unique within a stage"},
		{"blockers", func(p *types.PipelineDeclaration) {
			p.Stages[1].Blockers = []types.BlockerDeclaration{{Name: aws.String("b"), Type: types.BlockerTypeSchedule}}
		}, "InvalidBlockerDeclarationException", "reserved"},
		{"input not produced", func(p *types.PipelineDeclaration) {
			p.Stages[2].Actions[0].InputArtifacts[0].Name = aws.String("Missing")
		}, "InvalidStructureException", "not the output of an earlier action"},
		{"input from same runOrder", func(p *types.PipelineDeclaration) {
			build := types.ActionDeclaration{
				Name:            aws.String("Cmd"),
				ActionTypeId:    &types.ActionTypeId{Category: types.ActionCategoryCompute, Owner: types.ActionOwnerAws, Provider: aws.String("Commands"), Version: aws.String("1")},
				Commands:        []string{"make"},
				InputArtifacts:  []types.InputArtifact{{Name: aws.String("App")}},
				OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Built")}},
			}
			deploy := p.Stages[2].Actions[0]
			deploy.InputArtifacts = []types.InputArtifact{{Name: aws.String("Built")}}
			p.Stages[2].Actions = []types.ActionDeclaration{build, deploy}
		}, "InvalidStructureException", "does not run earlier"},
		{"duplicate output artifact", func(p *types.PipelineDeclaration) {
			a := p.Stages[0].Actions[0]
			a.Name = aws.String("Second")
			p.Stages[0].Actions = append(p.Stages[0].Actions, a)
		}, "InvalidStructureException", "unique in a pipeline"},
		{"run order out of range", func(p *types.PipelineDeclaration) { p.Stages[1].Actions[0].RunOrder = aws.Int32(1000) }, "ValidationException", "Member must have value less than or equal to 999"},
		{"unknown action type", func(p *types.PipelineDeclaration) { p.Stages[1].Actions[0].ActionTypeId.Provider = aws.String("Nope") }, "InvalidActionDeclarationException", "not available"},
		{"missing required configuration", func(p *types.PipelineDeclaration) { delete(p.Stages[2].Actions[0].Configuration, "BucketName") }, "InvalidActionDeclarationException", "missing required configuration 'BucketName'"},
		{"unknown configuration", func(p *types.PipelineDeclaration) { p.Stages[1].Actions[0].Configuration["Bogus"] = "x" }, "InvalidActionDeclarationException", "unknown configuration 'Bogus'"},
		{"too many input artifacts", func(p *types.PipelineDeclaration) {
			p.Stages[1].Actions[0].InputArtifacts = []types.InputArtifact{{Name: aws.String("App")}}
		}, "InvalidActionDeclarationException", "input artifacts"},
		{"deploy missing output key", func(p *types.PipelineDeclaration) { p.Stages[2].Actions[0].Configuration["Extract"] = "false" }, "InvalidActionDeclarationException", "ObjectKey"},
		{"namespace clashes with artifact", func(p *types.PipelineDeclaration) { p.Stages[1].Actions[0].Namespace = aws.String("App") }, "InvalidStructureException", "Namespace 'App'"},
		{"duplicate namespace", func(p *types.PipelineDeclaration) {
			p.Stages[0].Actions[0].Namespace = aws.String("NS")
			p.Stages[1].Actions[0].Namespace = aws.String("NS")
		}, "InvalidStructureException", "namespaces must be unique"},
		{"V1 with variables", func(p *types.PipelineDeclaration) {
			p.PipelineType = types.PipelineTypeV1
			p.Variables = []types.PipelineVariableDeclaration{{Name: aws.String("env")}}
		}, "InvalidStructureException", "pipelineType V2"},
		{"V1 with QUEUED", func(p *types.PipelineDeclaration) {
			p.PipelineType = types.PipelineTypeV1
			p.ExecutionMode = types.ExecutionModeQueued
		}, "InvalidStructureException", "pipelineType V2"},
		{"commands on a non-Commands action", func(p *types.PipelineDeclaration) { p.Stages[1].Actions[0].Commands = []string{"ls"} }, "InvalidActionDeclarationException", "commands"},
		{"too many tags", nil, "TooManyTagsException", ""},
		{"reserved tag", nil, "InvalidTagsException", "aws:"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("bad-%d", i)
			p := examplePipeline(name)
			in := &codepipeline.CreatePipelineInput{Pipeline: p}
			switch tc.code {
			case "TooManyTagsException":
				for j := range 51 {
					in.Tags = append(in.Tags, types.Tag{Key: aws.String(fmt.Sprintf("k%d", j)), Value: aws.String("v")})
				}
			case "InvalidTagsException":
				in.Tags = []types.Tag{{Key: aws.String("aws:owner"), Value: aws.String("x")}}
			default:
				tc.mutate(p)
			}
			_, err := c.CreatePipeline(ctx, in)
			wantCode(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not contain %q", err.Error(), tc.msg)
			}
			// Nothing half-written.
			_, err = c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String(name)})
			wantCode(t, err, "PipelineNotFoundException")
		})
	}
}

func TestV2FeaturesMakeAV2Pipeline(t *testing.T) {
	c := servertest.Start(t).Client()
	ctx := context.Background()
	p := examplePipeline("v2")
	p.Variables = []types.PipelineVariableDeclaration{{Name: aws.String("env"), DefaultValue: aws.String("prod")}}
	p.ExecutionMode = types.ExecutionModeQueued
	out, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p})
	if err != nil {
		t.Fatal(err)
	}
	if out.Pipeline.PipelineType != types.PipelineTypeV2 || out.Pipeline.ExecutionMode != types.ExecutionModeQueued {
		t.Errorf("type %q mode %q, want V2 QUEUED", out.Pipeline.PipelineType, out.Pipeline.ExecutionMode)
	}
}

func TestValidationExceptionMessageNamesFieldAndConstraint(t *testing.T) {
	srv := servertest.Start(t)
	// The SDK checks required members itself, so send the request raw.
	body := strings.Replace(strings.Replace(sneakyPipelineJSON, `"roleArn":"arn:aws:iam::123456789012:role/pipelined",`, "", 1), `"name":"sneaky"`, `"name":"has space"`, 1)
	r := rawCall(t, srv.URL, "CodePipeline_20150709.CreatePipeline", `{"pipeline":`+body+`}`, rootSigner)
	if r.status != 400 || r.body["__type"] != "ValidationException" {
		t.Fatalf("got %d %s", r.status, r.raw)
	}
	msg := r.body["message"].(string)
	for _, want := range []string{
		"2 validation errors detected: ",
		"Value 'has space' at 'pipeline.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z0-9.@\\-_]+",
		"Value null at 'pipeline.roleArn' failed to satisfy constraint: Member must not be null",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	_, err := srv.Client().GetPipeline(context.Background(), &codepipeline.GetPipelineInput{Name: aws.String(strings.Repeat("a", 101))})
	wantCode(t, err, "ValidationException")
	if !strings.Contains(err.Error(), "Value '"+strings.Repeat("a", 101)+"' at 'name' failed to satisfy constraint: Member must have length less than or equal to 100") {
		t.Errorf("message: %v", err)
	}
	p := examplePipeline("stages")
	p.Stages[0].Actions[0].RunOrder = aws.Int32(0)
	_, err = srv.Client().CreatePipeline(context.Background(), &codepipeline.CreatePipelineInput{Pipeline: p})
	if !strings.Contains(err.Error(), "Value '0' at 'pipeline.stages.1.member.actions.1.member.runOrder' failed to satisfy constraint: Member must have value greater than or equal to 1") {
		t.Errorf("nested path message: %v", err)
	}
}

func TestLimitExceeded(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend, func(c *server.Config) { c.MaxPipelines = 2 })
		c := srv.Client()
		ctx := context.Background()
		for i := range 2 {
			if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline(fmt.Sprint("p", i))}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline("p2")})
		wantCode(t, err, "LimitExceededException")
	})
}

func TestTagging(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		c := servertest.Start(t, backend).Client()
		ctx := context.Background()
		out, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: examplePipeline("tagged")})
		if err != nil {
			t.Fatal(err)
		}
		_ = out
		arn := aws.String("arn:aws:codepipeline:us-east-1:123456789012:tagged")
		_, err = c.TagResource(ctx, &codepipeline.TagResourceInput{ResourceArn: arn, Tags: []types.Tag{
			{Key: aws.String("b"), Value: aws.String("2")}, {Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("empty"), Value: aws.String("")},
		}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.TagResource(ctx, &codepipeline.TagResourceInput{ResourceArn: arn, Tags: []types.Tag{{Key: aws.String("a"), Value: aws.String("one")}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UntagResource(ctx, &codepipeline.UntagResourceInput{ResourceArn: arn, TagKeys: []string{"b", "never-set"}}); err != nil {
			t.Fatal(err)
		}
		got, err := c.ListTagsForResource(ctx, &codepipeline.ListTagsForResourceInput{ResourceArn: arn})
		if err != nil {
			t.Fatal(err)
		}
		var pairs []string
		for _, tg := range got.Tags {
			pairs = append(pairs, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
		}
		if strings.Join(pairs, ",") != "a=one,empty=" {
			t.Errorf("tags = %v", pairs)
		}
		// Pagination.
		page, err := c.ListTagsForResource(ctx, &codepipeline.ListTagsForResourceInput{ResourceArn: arn, MaxResults: aws.Int32(1)})
		if err != nil || len(page.Tags) != 1 || page.NextToken == nil {
			t.Fatalf("page 1: %+v %v", page, err)
		}
		page2, err := c.ListTagsForResource(ctx, &codepipeline.ListTagsForResourceInput{ResourceArn: arn, MaxResults: aws.Int32(1), NextToken: page.NextToken})
		if err != nil || len(page2.Tags) != 1 || aws.ToString(page2.Tags[0].Key) != "empty" {
			t.Fatalf("page 2: %+v %v", page2, err)
		}

		_, err = c.TagResource(ctx, &codepipeline.TagResourceInput{ResourceArn: aws.String("not-an-arn"), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
		wantCode(t, err, "ValidationException") // the model's pattern rejects it before the service sees it
		_, err = c.TagResource(ctx, &codepipeline.TagResourceInput{ResourceArn: aws.String("arn:aws:codepipeline:us-east-1:123456789012:nope"), Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
		wantCode(t, err, "ResourceNotFoundException")
		_, err = c.ListTagsForResource(ctx, &codepipeline.ListTagsForResourceInput{ResourceArn: aws.String("arn:aws:codepipeline:us-east-1:123456789012:actiontype:Custom/Build")})
		wantCode(t, err, "InvalidArnException")
		_, err = c.TagResource(ctx, &codepipeline.TagResourceInput{ResourceArn: arn, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}})
		wantCode(t, err, "InvalidTagsException")
		var many []types.Tag
		for i := range 49 {
			many = append(many, types.Tag{Key: aws.String(fmt.Sprint("k", i)), Value: aws.String("v")})
		}
		_, err = c.TagResource(ctx, &codepipeline.TagResourceInput{ResourceArn: arn, Tags: many})
		wantCode(t, err, "TooManyTagsException")
		got, _ = c.ListTagsForResource(ctx, &codepipeline.ListTagsForResourceInput{ResourceArn: arn})
		if len(got.Tags) != 2 {
			t.Errorf("a refused TagResource changed the tags: %d tags", len(got.Tags))
		}
	})
}

func withDataDir(dir string) servertest.Options {
	return func(c *server.Config) { c.DataDir = dir }
}
