// Package rules knows the rule types of CodePipeline stage conditions: the
// catalog ListRuleTypes answers, the checks a rule declaration must pass at
// CreatePipeline, and the evaluation of the rules pipelined runs itself
// (VariableCheck, DeploymentWindow). Rules that need an AWS service
// pipelined does not run (CloudWatchAlarm, LambdaInvoke, CodeBuild) are
// accepted and fail at evaluation with a message saying why.
package rules

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pipelined/pipelined/internal/wire"
)

// Rule type providers (owner AWS, category Rule, version 1).
const (
	VariableCheck    = "VariableCheck"
	DeploymentWindow = "DeploymentWindow"
	Commands         = "Commands"
	CloudWatchAlarm  = "CloudWatchAlarm"
	LambdaInvoke     = "LambdaInvoke"
	CodeBuild        = "CodeBuild"
)

// MaxRulesPerCondition is the most rules a condition may have (the service
// model's limit).
const MaxRulesPerCondition = 5

func prop(name, desc string, required bool) wire.RuleConfigurationProperty {
	return wire.RuleConfigurationProperty{
		Name: name, Description: desc, Required: wire.Ptr(required), Key: wire.Ptr(false),
		Secret: wire.Ptr(false), Queryable: wire.Ptr(false), Type: wire.RuleConfigurationPropertyTypeString,
	}
}

func ruleType(provider string, minIn, maxIn int, props ...wire.RuleConfigurationProperty) wire.RuleType {
	return wire.RuleType{
		Id:                          &wire.RuleTypeId{Category: wire.RuleCategoryRule, Owner: wire.RuleOwnerAws, Provider: provider, Version: "1"},
		Settings:                    &wire.RuleTypeSettings{},
		InputArtifactDetails:        &wire.ArtifactDetails{MinimumCount: wire.Ptr(minIn), MaximumCount: wire.Ptr(maxIn)},
		RuleConfigurationProperties: props,
	}
}

// Types returns the rule types as ListRuleTypes lists them, with the
// configuration properties of the CodePipeline rule reference.
func Types() []wire.RuleType {
	return []wire.RuleType{
		ruleType(CloudWatchAlarm, 0, 0,
			prop("AlarmName", "The name of the CloudWatch alarm to check.", true),
			prop("AlarmStates", "The alarm states that fail the rule (ALARM, OK, INSUFFICIENT_DATA); default ALARM.", false),
			prop("WaitTime", "How long, in minutes, to watch the alarm before the rule succeeds.", false),
		),
		ruleType(CodeBuild, 1, 5,
			prop("ProjectName", "The CodeBuild project that runs the check.", true),
			prop("PrimarySource", "The input artifact that is the primary source.", false),
			prop("BatchEnabled", "Whether to run a batch build.", false),
			prop("CombineArtifacts", "Whether to combine batch build artifacts.", false),
			prop("EnvironmentVariables", "Environment variables for the build, as JSON.", false),
		),
		ruleType(Commands, 0, 1),
		ruleType(DeploymentWindow, 0, 0,
			prop("Cron", "The cron expression (six fields and an optional year) of the times deployment is allowed.", true),
			prop("TimeZone", "The time zone of the cron expression (an IANA name such as Europe/Paris); default UTC.", false),
		),
		ruleType(LambdaInvoke, 0, 5,
			prop("FunctionName", "The Lambda function that runs the check.", true),
			prop("UserParameters", "A string given to the function.", false),
		),
		ruleType(VariableCheck, 0, 0,
			prop("Variable", "The variable to check, such as #{SourceVariables.BranchName}.", true),
			prop("Value", "The value to check the variable against.", true),
			prop("Operator", "EQ, NE, CONTAINS, MATCHES, GREATER_THAN or LESS_THAN.", true),
		),
	}
}

// Find returns the rule type of a rule type id (nil when it does not exist).
func Find(id *wire.RuleTypeId) *wire.RuleType {
	if id == nil || id.Category != wire.RuleCategoryRule {
		return nil
	}
	if id.Owner != "" && id.Owner != wire.RuleOwnerAws {
		return nil
	}
	if id.Version != "" && id.Version != "1" {
		return nil
	}
	for _, t := range Types() {
		if t.Id.Provider == id.Provider {
			return &t
		}
	}
	return nil
}

// Result names a condition kind's allowed results.
func allowedResults(kind string) []wire.Result {
	switch kind {
	case "beforeEntry":
		return []wire.Result{wire.ResultFail, wire.ResultSkip}
	case "onSuccess":
		return []wire.Result{wire.ResultRollback, wire.ResultFail}
	case "onFailure":
		return []wire.Result{wire.ResultRollback, wire.ResultRetry}
	}
	return nil
}

// ValidateResult checks that a result is allowed for a condition kind
// (field names the field in messages).
func ValidateResult(kind, field string, r wire.Result) error {
	allowed := allowedResults(kind)
	for _, a := range allowed {
		if r == a {
			return nil
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return fmt.Errorf("%s: result '%s' is not allowed for %s conditions (allowed: %s)", field, r, kind, strings.Join(names, ", "))
}

// ValidateRule checks a rule declaration: a known rule type, the required
// configuration properties and no unknown ones, and the values pipelined
// can check before running (a cron expression, a time zone, an operator).
// field names the rule in messages.
func ValidateRule(field string, r *wire.RuleDeclaration) error {
	t := Find(r.RuleTypeId)
	if t == nil {
		id := r.RuleTypeId
		if id == nil {
			return fmt.Errorf("%s.ruleTypeId: is required", field)
		}
		return fmt.Errorf("%s.ruleTypeId: rule type (category %s, owner %s, provider %s, version %s) does not exist", field, id.Category, id.Owner, id.Provider, id.Version)
	}
	known := map[string]bool{}
	for _, p := range t.RuleConfigurationProperties {
		known[p.Name] = true
		if *p.Required && r.Configuration[p.Name] == "" {
			return fmt.Errorf("%s.configuration: the %s rule needs the property '%s'", field, t.Id.Provider, p.Name)
		}
	}
	keys := make([]string, 0, len(r.Configuration))
	for k := range r.Configuration {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			return fmt.Errorf("%s.configuration: the %s rule has no property '%s'", field, t.Id.Provider, k)
		}
	}
	min, max := *t.InputArtifactDetails.MinimumCount, *t.InputArtifactDetails.MaximumCount
	if n := len(r.InputArtifacts); n < min || n > max {
		return fmt.Errorf("%s.inputArtifacts: the %s rule takes between %d and %d input artifacts; it has %d", field, t.Id.Provider, min, max, n)
	}
	if len(r.Commands) > 0 && t.Id.Provider != Commands {
		return fmt.Errorf("%s.commands: only the Commands rule takes commands", field)
	}
	switch t.Id.Provider {
	case Commands:
		if len(r.Commands) == 0 {
			return fmt.Errorf("%s.commands: the Commands rule needs at least one command", field)
		}
	case DeploymentWindow:
		if _, err := ParseWindow(r.Configuration["Cron"], r.Configuration["TimeZone"]); err != nil {
			return fmt.Errorf("%s.configuration: %w", field, err)
		}
	case VariableCheck:
		if _, err := ParseOperator(r.Configuration["Operator"]); err != nil {
			return fmt.Errorf("%s.configuration.Operator: %w", field, err)
		}
	}
	return nil
}

// Unsupported says why pipelined cannot evaluate a rule type, or "" when
// it can.
func Unsupported(provider string) string {
	switch provider {
	case CloudWatchAlarm:
		return "pipelined cannot evaluate CloudWatchAlarm rules: it has no CloudWatch alarms to read"
	case LambdaInvoke:
		return "pipelined cannot evaluate LambdaInvoke rules: it does not invoke AWS Lambda functions"
	case CodeBuild:
		return "pipelined cannot evaluate CodeBuild rules: it does not run AWS CodeBuild projects"
	case Commands:
		return "pipelined does not run Commands rules yet: Commands actions run on runners, but the rule form is not wired to them; use a Compute/AWS/Commands action in the stage instead"
	}
	return ""
}
