// Package actiontypes describes the action types pipelined knows: the
// AWS-owned types it runs itself (built in) and the custom and third-party
// types users register. It answers what a pipeline validator needs to know of
// a type: its configuration properties, which are required or secret, and how
// many artifacts it takes and gives.
package actiontypes

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/pipelined/pipelined/internal/wire"
)

// Key identifies an action type.
type Key struct {
	Category string
	Owner    string
	Provider string
	Version  string
}

func (k Key) String() string {
	return fmt.Sprintf("(Category: '%s', Provider: '%s', Owner: '%s', Version: '%s')", k.Category, k.Provider, k.Owner, k.Version)
}

// KeyOf returns the key of a wire action type id.
func KeyOf(id *wire.ActionTypeId) Key {
	if id == nil {
		return Key{}
	}
	return Key{Category: string(id.Category), Owner: string(id.Owner), Provider: id.Provider, Version: id.Version}
}

// ID returns the wire action type id of k.
func (k Key) ID() *wire.ActionTypeId {
	return &wire.ActionTypeId{Category: wire.ActionCategory(k.Category), Owner: wire.ActionOwner(k.Owner), Provider: k.Provider, Version: k.Version}
}

// Type is an action type as ListActionTypes shows it, plus what only the
// server knows.
type Type struct {
	wire.ActionType
	// Description is shown by GetActionType.
	Description string
	// RequiresCommands marks Compute/AWS/Commands, whose work is the action
	// declaration's commands field rather than a configuration property.
	RequiresCommands bool
	// JobTimeoutMinutes is how long a job of this type may run (custom and
	// third-party types; CodePipeline's default is one hour).
	JobTimeoutMinutes int
	// Executor and Permissions are what UpdateActionType set (nil until
	// then: a job worker executor, any account).
	Executor    *wire.ActionTypeExecutor    `json:",omitempty"`
	Permissions *wire.ActionTypePermissions `json:",omitempty"`
}

// New builds the action type that a CreateCustomActionType-shaped request
// describes (CreateCustomActionType itself, and the admin API's third-party
// registration), with empty settings when none are given.
func New(k Key, settings *wire.ActionTypeSettings, props []wire.ActionConfigurationProperty, in, out *wire.ArtifactDetails) *Type {
	if settings == nil {
		settings = &wire.ActionTypeSettings{}
	}
	return &Type{ActionType: wire.ActionType{
		Id: k.ID(), Settings: settings, ActionConfigurationProperties: props,
		InputArtifactDetails: in, OutputArtifactDetails: out,
	}}
}

// Property returns the configuration property named name.
func (t *Type) Property(name string) (wire.ActionConfigurationProperty, bool) {
	for _, p := range t.ActionConfigurationProperties {
		if p.Name == name {
			return p, true
		}
	}
	return wire.ActionConfigurationProperty{}, false
}

// IsSecret reports whether the named configuration property is secret.
func (t *Type) IsSecret(name string) bool {
	p, ok := t.Property(name)
	return ok && p.Secret != nil && *p.Secret
}

// Counts returns the minimum and maximum artifact counts of d (0, 0 when unset).
func Counts(d *wire.ArtifactDetails) (min, max int) {
	if d == nil {
		return 0, 0
	}
	if d.MinimumCount != nil {
		min = *d.MinimumCount
	}
	if d.MaximumCount != nil {
		max = *d.MaximumCount
	}
	return min, max
}

func prop(name, desc string, required, key bool) wire.ActionConfigurationProperty {
	return wire.ActionConfigurationProperty{
		Name: name, Description: desc, Required: wire.Ptr(required), Key: wire.Ptr(key),
		Secret: wire.Ptr(false), Queryable: wire.Ptr(false), Type: wire.ActionConfigurationPropertyTypeString,
	}
}

func artifacts(min, max int) *wire.ArtifactDetails {
	return &wire.ArtifactDetails{MinimumCount: wire.Ptr(min), MaximumCount: wire.Ptr(max)}
}

func builtin(category, provider, desc string, in, out *wire.ArtifactDetails, props ...wire.ActionConfigurationProperty) *Type {
	return &Type{
		ActionType: wire.ActionType{
			Id:                            Key{Category: category, Owner: "AWS", Provider: provider, Version: "1"}.ID(),
			Settings:                      &wire.ActionTypeSettings{},
			ActionConfigurationProperties: props,
			InputArtifactDetails:          in,
			OutputArtifactDetails:         out,
		},
		Description: desc,
	}
}

// Builtins returns the AWS-owned action types pipelined runs itself, with the
// configuration properties AWS documents for them, in ListActionTypes order.
func Builtins() []*Type {
	commands := builtin("Compute", "Commands", "Runs shell commands on the input artifacts.", artifacts(1, 10), artifacts(0, 1),
		prop("ComputeType", "A label a runner must have to run the action (ComputeType=VALUE).", false, false),
		prop("EnvironmentType", "A label a runner must have to run the action (EnvironmentType=VALUE).", false, false),
	)
	commands.RequiresCommands = true
	commands.JobTimeoutMinutes = 55 // AWS's default and maximum for Commands
	return []*Type{
		builtin("Approval", "Manual", "Waits for a person to approve or reject.", artifacts(0, 0), artifacts(0, 0),
			prop("NotificationArn", "The ARN of an SNS topic to notify when approval is needed.", false, false),
			prop("CustomData", "Text shown to the approver.", false, false),
			prop("ExternalEntityLink", "A URL the approver should review.", false, false),
		),
		commands,
		builtin("Deploy", "S3", "Deploys the input artifact to an S3 bucket.", artifacts(1, 1), artifacts(0, 0),
			prop("BucketName", "The bucket to deploy to.", true, true),
			prop("Extract", "true to unzip the artifact into the bucket, false to upload it as one object.", true, false),
			prop("ObjectKey", "The key of the object (required when Extract is false) or the prefix of the extracted files.", false, false),
			prop("KMSEncryptionKeyARN", "The KMS key for the deployed objects.", false, false),
			prop("CannedACL", "A canned ACL for the deployed objects.", false, false),
			prop("CacheControl", "The Cache-Control header of the deployed objects.", false, false),
		),
		builtin("Source", "CodeStarSourceConnection", "Starts the pipeline from a branch of a Git repository reached through a CodeConnections connection.", artifacts(0, 0), artifacts(1, 1),
			prop("ConnectionArn", "The ARN of the connection (codeconnections or codestar-connections).", true, true),
			prop("FullRepositoryId", "The repository: owner/name, or its path under the host's endpoint.", true, true),
			prop("BranchName", "The branch to read.", true, true),
			prop("OutputArtifactFormat", "CODE_ZIP (default) or CODEBUILD_CLONE_REF.", false, false),
			prop("DetectChanges", "Whether pipelined starts the pipeline on changes to the branch (true or false).", false, false),
		),
		builtin("Source", "S3", "Starts the pipeline from an object in a versioned S3 bucket.", artifacts(0, 0), artifacts(1, 1),
			prop("S3Bucket", "The bucket where source changes are detected.", true, true),
			prop("S3ObjectKey", "The key of the object to watch.", true, true),
			prop("PollForSourceChanges", "Whether pipelined polls the object for changes (true or false).", false, false),
			prop("AllowOverrideForS3ObjectKey", "Whether StartPipelineExecution may override S3ObjectKey.", false, false),
		),
	}
}

// BuiltinIndex maps the key of every built-in type to it.
func BuiltinIndex() map[Key]*Type {
	m := map[Key]*Type{}
	for _, t := range Builtins() {
		m[KeyOf(t.Id)] = t
	}
	return m
}

// templateRef matches the {Config:Name} placeholders of URL templates.
var templateRef = regexp.MustCompile(`\{Config:([^}]*)\}`)

// Validate applies the rules of CreateCustomActionType that the service
// model does not state (custom and third-party types alike): unique property
// names; at most one queryable property, which is required, not secret and
// of type String; minimum artifact counts not above maximums; URL templates
// that are absolute http(s) URLs naming only declared, non-secret
// properties. Errors are
// ValidationExceptions.
func Validate(t *Type) error {
	names := map[string]bool{}
	queryable := ""
	for _, p := range t.ActionConfigurationProperties {
		if names[p.Name] {
			return wire.Errorf(wire.ErrValidation, "Configuration property '%s' is declared more than once", p.Name)
		}
		names[p.Name] = true
		if p.Queryable != nil && *p.Queryable {
			if queryable != "" {
				return wire.Errorf(wire.ErrValidation, "Only one configuration property may be queryable; '%s' and '%s' both are", queryable, p.Name)
			}
			queryable = p.Name
			if p.Required == nil || !*p.Required {
				return wire.Errorf(wire.ErrValidation, "Queryable configuration property '%s' must be required", p.Name)
			}
			if p.Secret != nil && *p.Secret {
				return wire.Errorf(wire.ErrValidation, "Queryable configuration property '%s' must not be secret", p.Name)
			}
		}
		if p.Queryable != nil && *p.Queryable && p.Type != "" && p.Type != wire.ActionConfigurationPropertyTypeString {
			return wire.Errorf(wire.ErrValidation, "Queryable configuration property '%s' must be of type String", p.Name)
		}
	}
	for _, d := range []*wire.ArtifactDetails{t.InputArtifactDetails, t.OutputArtifactDetails} {
		if min, max := Counts(d); min > max {
			return wire.Errorf(wire.ErrValidation, "Artifact details have a minimumCount (%d) greater than the maximumCount (%d)", min, max)
		}
	}
	st := t.Settings
	for field, tmpl := range map[string]string{
		"settings.entityUrlTemplate": st.EntityUrlTemplate, "settings.executionUrlTemplate": st.ExecutionUrlTemplate,
		"settings.revisionUrlTemplate": st.RevisionUrlTemplate, "settings.thirdPartyConfigurationUrl": st.ThirdPartyConfigurationUrl,
	} {
		if tmpl == "" {
			continue
		}
		for _, m := range templateRef.FindAllStringSubmatch(tmpl, -1) {
			if !names[m[1]] {
				return wire.Errorf(wire.ErrValidation, "%s refers to {Config:%s}, which is not a configuration property of the action type", field, m[1])
			}
			// A URL is shown to anyone who may read the pipeline's state:
			// a secret's value never goes in one.
			if t.IsSecret(m[1]) {
				return wire.Errorf(wire.ErrValidation, "%s refers to {Config:%s}, which is a secret configuration property: URLs may name only required, non-secret properties", field, m[1])
			}
		}
		// Placeholders are filled in later; what remains must be an absolute http(s) URL.
		filled := templateRef.ReplaceAllString(tmpl, "x")
		filled = strings.NewReplacer("{ExternalExecutionId}", "x", "{RevisionId}", "x").Replace(filled)
		u, err := url.Parse(filled)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return wire.Errorf(wire.ErrValidation, "%s must be an absolute http or https URL template, got '%s'", field, tmpl)
		}
	}
	return nil
}
