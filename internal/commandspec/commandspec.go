// Package commandspec is the Compute/AWS/Commands/1 action as pipelined
// runs it: the rules its declaration must follow (checked at CreatePipeline
// and UpdatePipeline), and the spec the engine hands a runner inside the
// job's configuration.
//
// The job protocol's job data has no field for a declaration's commands,
// output variables, environment variables or output file globs, so the
// engine resolves them (variable references included) and puts them, JSON
// encoded, under the configuration key SpecKey of the job's data. A runner
// reads them back with Decode; nothing else sees them (the configuration
// the APIs show is the declaration's).
package commandspec

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/gobwas/glob"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/wire"
)

// Key is the action type the package describes.
var Key = actiontypes.Key{Category: "Compute", Owner: "AWS", Provider: "Commands", Version: "1"}

// Limits, as CodePipeline documents them for the Commands action, and
// pipelined's own where AWS states none.
const (
	MaxCommands = 50
	// MaxCommandLength is the longest command line, in bytes.
	MaxCommandLength = 1000
	// MaxTimeoutMinutes is the Commands action's default and maximum
	// timeoutInMinutes.
	MaxTimeoutMinutes = 55
	// DefaultFiles selects an output artifact's files when it names none:
	// everything under the primary input's directory.
	DefaultFiles = "**/*"
	// SpecKey is the configuration key of a Commands job's spec.
	SpecKey = "pipelined:commands"
	// LabelsParam is the queryParam key under which a runner polls with
	// its labels (Labels' canonical form).
	LabelsParam = "labels"
)

// Label properties: configuration a Commands action may have, which
// pipelined treats as labels a runner must match (CodeBuild's compute
// choices mean nothing to a runner on someone's host).
var labelProperties = []string{"ComputeType", "EnvironmentType"}

// LabelProperties are the configuration properties of the Commands type.
func LabelProperties() []string { return slices.Clone(labelProperties) }

// Spec is what a runner needs of a Commands action beyond the job data.
type Spec struct {
	Commands             []string `json:"commands"`
	EnvironmentVariables []EnvVar `json:"environmentVariables,omitempty"`
	OutputVariables      []string `json:"outputVariables,omitempty"`
	// Files are the globs of the output artifact's files (no output
	// artifact: none).
	Files []string `json:"files,omitempty"`
	// TimeoutSeconds is the job's timeout, counted from its
	// acknowledgement.
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// EnvVar is a plaintext environment variable of the action.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Resolver replaces variable references (#{ns.var}) in a value.
type Resolver func(field, value string) (string, error)

// Build makes the spec of a declaration, resolving variable references in
// its commands and environment variable values with resolve.
func Build(ad *wire.ActionDeclaration, resolve Resolver) (*Spec, error) {
	s := &Spec{OutputVariables: slices.Clone(ad.OutputVariables)}
	for i, c := range ad.Commands {
		r, err := resolve(fmt.Sprintf("commands[%d]", i), c)
		if err != nil {
			return nil, err
		}
		s.Commands = append(s.Commands, r)
	}
	for _, ev := range ad.EnvironmentVariables {
		r, err := resolve("environmentVariables."+ev.Name, ev.Value)
		if err != nil {
			return nil, err
		}
		s.EnvironmentVariables = append(s.EnvironmentVariables, EnvVar{Name: ev.Name, Value: r})
	}
	for _, o := range ad.OutputArtifacts {
		s.Files = append(s.Files, o.Files...)
		if len(o.Files) == 0 {
			s.Files = append(s.Files, DefaultFiles)
		}
	}
	return s, nil
}

// Encode is the configuration value of a spec.
func (s *Spec) Encode() (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// Decode reads the spec from a job's configuration.
func Decode(config map[string]string) (*Spec, error) {
	raw, ok := config[SpecKey]
	if !ok {
		return nil, fmt.Errorf("the job's configuration has no %s (a job of another action type?)", SpecKey)
	}
	var s Spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return nil, fmt.Errorf("decode the commands spec: %w", err)
	}
	if len(s.Commands) == 0 {
		return nil, fmt.Errorf("the commands spec has no commands")
	}
	return &s, nil
}

// Labels is the canonical label string of a configuration (or of a
// runner's labels): "Name=Value" pairs of the label properties that are
// set, sorted by name and joined by commas; "" when none is.
func Labels(config map[string]string) string {
	var parts []string
	for _, p := range labelProperties {
		if v := strings.TrimSpace(config[p]); v != "" {
			parts = append(parts, p+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

// ParseLabels reads labels given as "Name=Value,Name=Value" (a runner's
// flag) and returns their canonical form.
func ParseLabels(s string) (string, error) {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok || !slices.Contains(labelProperties, name) || strings.TrimSpace(value) == "" {
			return "", fmt.Errorf("label %q: labels are %s=VALUE pairs", part, strings.Join(labelProperties, "=VALUE or "))
		}
		m[name] = strings.TrimSpace(value)
	}
	return Labels(m), nil
}

// varName is the shape of an environment or output variable name that a
// shell can set and read.
var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidVarName reports whether name can name a shell variable.
func ValidVarName(name string) bool { return varName.MatchString(name) }

// reservedPrefixes name variables the runner sets itself.
var reservedPrefixes = []string{"CODEBUILD_", "PIPELINED_"}

// Validate checks a Commands action declaration beyond the service model:
// it returns a message naming the field and the constraint, or "".
func Validate(ad *wire.ActionDeclaration) string {
	name := ad.Name
	if len(ad.Commands) == 0 || len(ad.Commands) > MaxCommands {
		return fmt.Sprintf("Action '%s': commands must have between 1 and %d commands; it has %d", name, MaxCommands, len(ad.Commands))
	}
	for i, c := range ad.Commands {
		switch {
		case strings.TrimSpace(c) == "":
			return fmt.Sprintf("Action '%s': commands[%d] is empty", name, i)
		case len(c) > MaxCommandLength:
			return fmt.Sprintf("Action '%s': commands[%d] is %d bytes long; a command may be at most %d", name, i, len(c), MaxCommandLength)
		case strings.ContainsAny(c, "\n\r\x00"):
			return fmt.Sprintf("Action '%s': commands[%d] spans several lines; each command must be one line (multi-line formats are not supported)", name, i)
		}
	}
	if ad.TimeoutInMinutes != nil && *ad.TimeoutInMinutes > MaxTimeoutMinutes {
		return fmt.Sprintf("Action '%s': timeoutInMinutes is %d; Commands actions may run at most %d minutes", name, *ad.TimeoutInMinutes, MaxTimeoutMinutes)
	}
	envSeen := map[string]bool{}
	for i, ev := range ad.EnvironmentVariables {
		if ev.Type == wire.EnvironmentVariableTypeSecretsManager {
			return fmt.Sprintf("Action '%s': environmentVariables[%d] ('%s') is of type SECRETS_MANAGER, which pipelined does not offer (it has no Secrets Manager). "+
				"Have the commands fetch the secret at run time with the job's OIDC ID token (PIPELINED_ID_TOKEN_REQUEST_URL and PIPELINED_ID_TOKEN_REQUEST_TOKEN, e.g. to assume an AWS role that may read it), "+
				"or pass it as a secret configuration property of a custom action type, which pipelined stores encrypted", name, i, ev.Name)
		}
		if !ValidVarName(ev.Name) {
			return fmt.Sprintf("Action '%s': environmentVariables[%d].name '%s' is not a shell variable name ([A-Za-z_][A-Za-z0-9_]*)", name, i, ev.Name)
		}
		for _, p := range reservedPrefixes {
			if strings.HasPrefix(ev.Name, p) {
				return fmt.Sprintf("Action '%s': environmentVariables[%d].name '%s' starts with %s, which the runner reserves for the variables it sets", name, i, ev.Name, p)
			}
		}
		if envSeen[ev.Name] {
			return fmt.Sprintf("Action '%s': environmentVariables names '%s' more than once", name, ev.Name)
		}
		envSeen[ev.Name] = true
	}
	outSeen := map[string]bool{}
	for i, ov := range ad.OutputVariables {
		if !ValidVarName(ov) {
			return fmt.Sprintf("Action '%s': outputVariables[%d] '%s' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", name, i, ov)
		}
		if outSeen[ov] {
			return fmt.Sprintf("Action '%s': outputVariables names '%s' more than once", name, ov)
		}
		outSeen[ov] = true
	}
	for oi, o := range ad.OutputArtifacts {
		for fi, f := range o.Files {
			if msg := checkGlob(f); msg != "" {
				return fmt.Sprintf("Action '%s': outputArtifacts[%d].files[%d] '%s' %s", name, oi, fi, f, msg)
			}
		}
	}
	for k := range ad.Configuration {
		if k == SpecKey {
			return fmt.Sprintf("Action '%s': configuration key '%s' is reserved", name, k)
		}
	}
	return ""
}

// checkGlob says what is wrong with an output file glob ("" when nothing).
func checkGlob(g string) string {
	switch {
	case strings.TrimSpace(g) == "":
		return "is empty"
	case strings.HasPrefix(g, "/") || strings.HasPrefix(g, "\\"):
		return "is absolute; globs are relative to the work directory"
	case strings.ContainsRune(g, '\\'):
		return "contains a backslash; use / between path segments"
	case strings.ContainsRune(g, 0):
		return "contains a NUL byte"
	}
	for _, seg := range strings.Split(g, "/") {
		if seg == ".." {
			return "contains '..'; globs may not reach outside the work directory"
		}
	}
	if _, err := CompileGlob(g); err != nil {
		return "is not a valid glob: " + err.Error()
	}
	return ""
}

// Glob matches relative slash-separated paths against an output file glob:
// '*' within a segment, '**' across segments (also none: "**/*.js" matches
// "a.js", "src/**/*.js" matches "src/a.js"), '?', character classes and
// {a,b}. A glob ending in '/' selects everything under a directory.
type Glob struct{ variants []*glob.Pattern }

// CompileGlob compiles an output file glob.
func CompileGlob(pattern string) (*Glob, error) {
	p := strings.TrimPrefix(pattern, "./")
	if strings.HasSuffix(p, "/") {
		p += "**"
	}
	forms := []string{p}
	if rest, ok := strings.CutPrefix(p, "**/"); ok {
		forms = append(forms, rest)
	}
	for _, f := range slices.Clone(forms) {
		if strings.Contains(f, "/**/") {
			forms = append(forms, strings.ReplaceAll(f, "/**/", "/"))
		}
	}
	g := &Glob{}
	for _, f := range forms {
		c, err := glob.Compile(f, '/')
		if err != nil {
			return nil, err
		}
		g.variants = append(g.variants, c)
	}
	return g, nil
}

// Match reports whether a relative slash-separated path matches.
func (g *Glob) Match(rel string) bool {
	rel = path.Clean(rel)
	for _, v := range g.variants {
		if v.Match(rel) {
			return true
		}
	}
	return false
}
