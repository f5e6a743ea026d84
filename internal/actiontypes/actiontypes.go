// Package actiontypes describes the action types pipelined knows: the
// AWS-owned types it runs itself (built in) and the custom and third-party
// types users register. It answers what a pipeline validator needs to know of
// a type: its configuration properties, which are required or secret, and how
// many artifacts it takes and gives.
package actiontypes

import (
	"fmt"

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
	commands := builtin("Compute", "Commands", "Runs shell commands on the input artifacts.", artifacts(1, 10), artifacts(0, 1))
	commands.RequiresCommands = true
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
