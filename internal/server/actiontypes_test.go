package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/server/servertest"
)

func deployerType(version string) *codepipeline.CreateCustomActionTypeInput {
	return &codepipeline.CreateCustomActionTypeInput{
		Category: types.ActionCategoryDeploy,
		Provider: aws.String("Deployer"),
		Version:  aws.String(version),
		ConfigurationProperties: []types.ActionConfigurationProperty{
			{Name: aws.String("Target"), Required: true, Key: true, Secret: false, Queryable: true, Type: types.ActionConfigurationPropertyTypeString},
			{Name: aws.String("ApiToken"), Required: true, Key: false, Secret: true},
			{Name: aws.String("Region"), Required: false, Key: false, Secret: false},
		},
		InputArtifactDetails:  &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1},
		OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 0},
		Settings: &types.ActionTypeSettings{
			EntityUrlTemplate:    aws.String("https://deployer.example.com/targets/{Config:Target}"),
			ExecutionUrlTemplate: aws.String("https://deployer.example.com/runs/{ExternalExecutionId}"),
		},
	}
}

func TestCustomActionTypes(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		c := servertest.Start(t, backend).Client()
		ctx := context.Background()

		out, err := c.CreateCustomActionType(ctx, deployerType("1"))
		if err != nil {
			t.Fatal(err)
		}
		if out.ActionType.Id.Owner != types.ActionOwnerCustom || len(out.ActionType.ActionConfigurationProperties) != 3 {
			t.Fatalf("created: %+v", out.ActionType)
		}
		// Identical again: accepted, unchanged.
		if _, err := c.CreateCustomActionType(ctx, deployerType("1")); err != nil {
			t.Fatalf("identical re-create: %v", err)
		}
		// Same version, different definition: refused.
		changed := deployerType("1")
		changed.ConfigurationProperties[2].Required = true
		_, err = c.CreateCustomActionType(ctx, changed)
		wantCode(t, err, "ValidationException")

		list, err := c.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: types.ActionOwnerCustom})
		if err != nil || len(list.ActionTypes) != 1 || aws.ToString(list.ActionTypes[0].Id.Provider) != "Deployer" {
			t.Fatalf("custom list: %+v %v", list, err)
		}
		all, err := c.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, at := range all.ActionTypes {
			ids = append(ids, fmt.Sprintf("%s/%s/%s/%s", at.Id.Owner, at.Id.Category, aws.ToString(at.Id.Provider), aws.ToString(at.Id.Version)))
		}
		for _, want := range []string{"AWS/Source/S3/1", "AWS/Approval/Manual/1", "AWS/Deploy/S3/1", "AWS/Compute/Commands/1", "Custom/Deploy/Deployer/1"} {
			if !strings.Contains(strings.Join(ids, " "), want) {
				t.Errorf("ListActionTypes lacks %s: %v", want, ids)
			}
		}

		// GetActionType takes owners AWS and ThirdParty only (the model's pattern), as on AWS.
		_, err = c.GetActionType(ctx, &codepipeline.GetActionTypeInput{Category: types.ActionCategoryDeploy, Owner: aws.String("Custom"), Provider: aws.String("Deployer"), Version: aws.String("1")})
		wantCode(t, err, "ValidationException")
		got, err := c.GetActionType(ctx, &codepipeline.GetActionTypeInput{Category: types.ActionCategoryDeploy, Owner: aws.String("AWS"), Provider: aws.String("S3"), Version: aws.String("1")})
		if err != nil {
			t.Fatal(err)
		}
		if got.ActionType.Executor == nil || len(got.ActionType.Properties) != 6 || got.ActionType.Properties[0].Optional || !got.ActionType.Properties[2].Optional {
			t.Errorf("GetActionType: %+v", got.ActionType)
		}
		if min, max := got.ActionType.InputArtifactDetails.MinimumCount, got.ActionType.InputArtifactDetails.MaximumCount; min != 1 || max != 1 {
			t.Errorf("Deploy/S3 input artifacts %d..%d, want 1..1", min, max)
		}
		_, err = c.GetActionType(ctx, &codepipeline.GetActionTypeInput{Category: types.ActionCategoryDeploy, Owner: aws.String("AWS"), Provider: aws.String("Nope"), Version: aws.String("1")})
		wantCode(t, err, "ActionTypeNotFoundException")

		// Delete; the type is gone from lists and pipelines cannot use it.
		if _, err := c.DeleteCustomActionType(ctx, &codepipeline.DeleteCustomActionTypeInput{Category: types.ActionCategoryDeploy, Provider: aws.String("Deployer"), Version: aws.String("1")}); err != nil {
			t.Fatal(err)
		}
		list, _ = c.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: types.ActionOwnerCustom})
		if len(list.ActionTypes) != 0 {
			t.Errorf("deleted type still listed: %+v", list.ActionTypes)
		}
		deployerID := &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerCustom, Provider: aws.String("Deployer"), Version: aws.String("1")}
		_, err = c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: deployerID})
		wantCode(t, err, "ActionTypeNotFoundException")
		_, err = c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipelineUsingDeployer("after-delete", "1", "s3cr3t")})
		wantCode(t, err, "InvalidActionDeclarationException")
		// Re-creating the deleted version needs the identical definition...
		_, err = c.CreateCustomActionType(ctx, changed)
		wantCode(t, err, "ValidationException")
		// ...which restores it; a new version is always fine.
		if _, err := c.CreateCustomActionType(ctx, deployerType("1")); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if _, err := c.CreateCustomActionType(ctx, deployerType("2")); err != nil {
			t.Fatal(err)
		}
		// Polling a live type with no work queued answers no jobs.
		polled, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: deployerID})
		if err != nil || len(polled.Jobs) != 0 {
			t.Fatalf("poll of an idle type: %+v %v", polled, err)
		}
	})
}

func TestCustomActionTypeRules(t *testing.T) {
	c := servertest.Start(t).Client()
	ctx := context.Background()
	cases := map[string]func(in *codepipeline.CreateCustomActionTypeInput){
		"two queryable": func(in *codepipeline.CreateCustomActionTypeInput) { in.ConfigurationProperties[2].Queryable = true },
		"queryable not required": func(in *codepipeline.CreateCustomActionTypeInput) {
			in.ConfigurationProperties[0].Required = false
		},
		"queryable secret": func(in *codepipeline.CreateCustomActionTypeInput) { in.ConfigurationProperties[0].Secret = true },
		"eleven properties": func(in *codepipeline.CreateCustomActionTypeInput) {
			for i := range 8 {
				in.ConfigurationProperties = append(in.ConfigurationProperties, types.ActionConfigurationProperty{Name: aws.String(fmt.Sprint("P", i))})
			}
		},
		"duplicate property": func(in *codepipeline.CreateCustomActionTypeInput) {
			in.ConfigurationProperties[2].Name = aws.String("ApiToken")
		},
		"template names unknown property": func(in *codepipeline.CreateCustomActionTypeInput) {
			in.Settings.EntityUrlTemplate = aws.String("https://x.example.com/{Config:Nope}")
		},
		"template not a URL": func(in *codepipeline.CreateCustomActionTypeInput) {
			in.Settings.EntityUrlTemplate = aws.String("deployer targets")
		},
		"too many artifacts": func(in *codepipeline.CreateCustomActionTypeInput) {
			in.InputArtifactDetails.MaximumCount = 6
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			in := deployerType("1")
			mutate(in)
			_, err := c.CreateCustomActionType(ctx, in)
			wantCode(t, err, "ValidationException")
		})
	}
	list, _ := c.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: types.ActionOwnerCustom})
	if len(list.ActionTypes) != 0 {
		t.Errorf("refused types were stored: %+v", list.ActionTypes)
	}
}

func pipelineUsingDeployer(name, version, token string) *types.PipelineDeclaration {
	p := examplePipeline(name)
	p.Stages[2].Actions[0] = types.ActionDeclaration{
		Name:           aws.String("Ship"),
		ActionTypeId:   &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerCustom, Provider: aws.String("Deployer"), Version: aws.String(version)},
		Configuration:  map[string]string{"Target": "prod", "ApiToken": token},
		InputArtifacts: []types.InputArtifact{{Name: aws.String("App")}},
	}
	return p
}
