package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/server/servertest"
	"github.com/pipelined/pipelined/internal/wire"
)

// The operations that answered UnsupportedOperation before stage conditions:
// ListRuleTypes, PutActionRevision, UpdateActionType (with GetActionType)
// and ListDeployActionExecutionTargets (ListRuleExecutions and
// OverrideStageCondition are in conditions_test.go).
func TestRemainingOperations(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, c := engineServer(t, backend)
		ctx := context.Background()
		startWorker(t, c, nil)

		rt, err := c.ListRuleTypes(ctx, &codepipeline.ListRuleTypesInput{})
		if err != nil {
			t.Fatal(err)
		}
		props := map[string][]string{}
		for _, r := range rt.RuleTypes {
			for _, p := range r.RuleConfigurationProperties {
				props[aws.ToString(r.Id.Provider)] = append(props[aws.ToString(r.Id.Provider)], aws.ToString(p.Name))
			}
			if r.Id.Category != types.RuleCategoryRule || r.Id.Owner != types.RuleOwnerAws || aws.ToString(r.Id.Version) != "1" {
				t.Errorf("rule type id %+v", r.Id)
			}
		}
		if len(rt.RuleTypes) != 6 || strings.Join(props["VariableCheck"], ",") != "Variable,Value,Operator" ||
			strings.Join(props["DeploymentWindow"], ",") != "Cron,TimeZone" || len(props["CloudWatchAlarm"]) == 0 {
			t.Errorf("rule types: %d %v", len(rt.RuleTypes), props)
		}

		// PutActionRevision starts an execution with the revision, once.
		first := create(t, c, condPipeline("revs", ""))
		waitStatus(t, c, "revs", first, types.PipelineExecutionStatusSucceeded)
		put := func(rev string) *codepipeline.PutActionRevisionOutput {
			out, err := c.PutActionRevision(ctx, &codepipeline.PutActionRevisionInput{PipelineName: aws.String("revs"), StageName: aws.String("Source"),
				ActionName: aws.String("Checkout"), ActionRevision: &types.ActionRevision{RevisionId: aws.String(rev), RevisionChangeId: aws.String(rev), Created: aws.Time(time.Now())}})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		out := put("rev-2")
		if !out.NewRevision || aws.ToString(out.PipelineExecutionId) == "" {
			t.Fatalf("PutActionRevision: %+v", out)
		}
		id := aws.ToString(out.PipelineExecutionId)
		waitStatus(t, c, "revs", id, types.PipelineExecutionStatusSucceeded)
		ex, _ := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("revs"), PipelineExecutionId: aws.String(id)})
		if tr := ex.PipelineExecution.Trigger; tr.TriggerType != types.TriggerTypePutActionRevision || !strings.Contains(aws.ToString(tr.TriggerDetail), ":root") {
			t.Errorf("trigger %+v", tr)
		}
		if again := put("rev-2"); again.NewRevision || aws.ToString(again.PipelineExecutionId) != "" {
			t.Errorf("the same revision again: %+v", again)
		}
		_, err = c.PutActionRevision(ctx, &codepipeline.PutActionRevisionInput{PipelineName: aws.String("revs"), StageName: aws.String("Source"),
			ActionName: aws.String("Nope"), ActionRevision: &types.ActionRevision{RevisionId: aws.String("r"), RevisionChangeId: aws.String("r"), Created: aws.Time(time.Now())}})
		if apiCode(t, err) != "ActionNotFoundException" {
			t.Errorf("unknown action: %v", err)
		}

		// UpdateActionType (of a third-party type): GetActionType returns
		// what was set.
		adm := &admin.Client{Endpoint: srv.URL, Region: servertest.Region, HTTP: srv.HTTP,
			Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, "")}
		if _, err := adm.RegisterActionType(ctx, &admin.RegisterActionTypeInput{CreateCustomActionTypeInput: wire.CreateCustomActionTypeInput{
			Category: "Build", Provider: "Partner", Version: "1",
			InputArtifactDetails:  &wire.ArtifactDetails{MinimumCount: wire.Ptr(0), MaximumCount: wire.Ptr(1)},
			OutputArtifactDetails: &wire.ArtifactDetails{MinimumCount: wire.Ptr(0), MaximumCount: wire.Ptr(1)},
		}}); err != nil {
			t.Fatal(err)
		}
		_, err = c.UpdateActionType(ctx, &codepipeline.UpdateActionTypeInput{ActionType: &types.ActionTypeDeclaration{
			Id:          &types.ActionTypeIdentifier{Category: types.ActionCategoryBuild, Owner: aws.String("ThirdParty"), Provider: aws.String("Partner"), Version: aws.String("1")},
			Description: aws.String("Builds things"),
			Executor: &types.ActionTypeExecutor{Type: types.ExecutorTypeJobWorker, JobTimeout: aws.Int32(600),
				Configuration: &types.ExecutorConfiguration{JobWorkerExecutorConfiguration: &types.JobWorkerExecutorConfiguration{PollingAccounts: []string{"123456789012"}}}},
			Permissions:           &types.ActionTypePermissions{AllowedAccounts: []string{"123456789012"}},
			Properties:            []types.ActionTypeProperty{{Name: aws.String("Command"), Key: true, Optional: false, NoEcho: false, Queryable: false}, {Name: aws.String("Token"), Optional: true, NoEcho: true}},
			Urls:                  &types.ActionTypeUrls{ConfigurationUrl: aws.String("https://ci.example.com/config")},
			InputArtifactDetails:  &types.ActionTypeArtifactDetails{MinimumCount: 0, MaximumCount: 5},
			OutputArtifactDetails: &types.ActionTypeArtifactDetails{MinimumCount: 0, MaximumCount: 5},
		}})
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.GetActionType(ctx, &codepipeline.GetActionTypeInput{Category: types.ActionCategoryBuild, Owner: aws.String("ThirdParty"), Provider: aws.String("Partner"), Version: aws.String("1")})
		if err != nil {
			t.Fatal(err)
		}
		at := got.ActionType
		if aws.ToString(at.Description) != "Builds things" || aws.ToInt32(at.Executor.JobTimeout) != 600 ||
			at.Executor.Configuration.JobWorkerExecutorConfiguration.PollingAccounts[0] != "123456789012" ||
			at.Permissions.AllowedAccounts[0] != "123456789012" || aws.ToString(at.Urls.ConfigurationUrl) != "https://ci.example.com/config" ||
			len(at.Properties) != 2 || !at.Properties[1].NoEcho || !at.Properties[1].Optional {
			t.Errorf("GetActionType after update: %+v", at)
		}
		_, err = c.UpdateActionType(ctx, &codepipeline.UpdateActionTypeInput{ActionType: &types.ActionTypeDeclaration{
			Id:                   &types.ActionTypeIdentifier{Category: types.ActionCategoryBuild, Owner: aws.String("ThirdParty"), Provider: aws.String("Missing"), Version: aws.String("1")},
			Executor:             &types.ActionTypeExecutor{Type: types.ExecutorTypeJobWorker, Configuration: &types.ExecutorConfiguration{}},
			InputArtifactDetails: &types.ActionTypeArtifactDetails{}, OutputArtifactDetails: &types.ActionTypeArtifactDetails{},
		}})
		if apiCode(t, err) != "ActionTypeNotFoundException" {
			t.Errorf("update of a missing type: %v", err)
		}

		// ListDeployActionExecutionTargets: the S3 deploy's location; none
		// for a custom deploy.
		p := condPipeline("deploys", "")
		p.Stages[2].Actions = append(p.Stages[2].Actions, types.ActionDeclaration{Name: aws.String("Site"),
			ActionTypeId:   &types.ActionTypeId{Category: types.ActionCategoryDeploy, Owner: types.ActionOwnerAws, Provider: aws.String("S3"), Version: aws.String("1")},
			Configuration:  map[string]string{"BucketName": "site", "Extract": "false", "ObjectKey": "app-#{codepipeline.PipelineExecutionId}.zip"},
			InputArtifacts: []types.InputArtifact{{Name: aws.String("Bin")}}})
		id = create(t, c, p)
		var site, custom string
		waitFor(t, "both deploys to finish", func() bool {
			list, err := c.ListActionExecutions(ctx, &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("deploys")})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range list.ActionExecutionDetails {
				if d.Status == types.ActionExecutionStatusInProgress {
					continue
				}
				switch aws.ToString(d.ActionName) {
				case "Site":
					site = aws.ToString(d.ActionExecutionId)
				case "Deploy":
					custom = aws.ToString(d.ActionExecutionId)
				}
			}
			return site != "" && custom != ""
		})
		tg, err := c.ListDeployActionExecutionTargets(ctx, &codepipeline.ListDeployActionExecutionTargetsInput{PipelineName: aws.String("deploys"), ActionExecutionId: aws.String(site)})
		if err != nil {
			t.Fatal(err)
		}
		if len(tg.Targets) != 1 || aws.ToString(tg.Targets[0].TargetId) != "s3://site/app-"+id+".zip" || tg.Targets[0].StartTime == nil {
			t.Errorf("S3 deploy targets: %+v", tg.Targets)
		}
		tg, err = c.ListDeployActionExecutionTargets(ctx, &codepipeline.ListDeployActionExecutionTargetsInput{PipelineName: aws.String("deploys"), ActionExecutionId: aws.String(custom)})
		if err != nil || len(tg.Targets) != 0 {
			t.Errorf("custom deploy targets: %+v %v", tg, err)
		}
		_, err = c.ListDeployActionExecutionTargets(ctx, &codepipeline.ListDeployActionExecutionTargetsInput{PipelineName: aws.String("deploys"), ActionExecutionId: aws.String("nope")})
		if apiCode(t, err) != "ActionExecutionNotFoundException" {
			t.Errorf("unknown action execution: %v", err)
		}
	})
}
