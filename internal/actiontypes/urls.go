package actiontypes

import (
	"strings"
)

// URL placeholders of the settings templates besides {Config:Name}.
const (
	externalIDRef = "{ExternalExecutionId}"
	revisionRef   = "{RevisionId}"
)

// URLValues are what a settings URL template is filled with.
type URLValues struct {
	// Configuration is the action's configuration (secret values sealed
	// or masked: they are never used).
	Configuration map[string]string
	// ExternalExecutionID is the id a job worker reported in
	// executionDetails ("" when none yet).
	ExternalExecutionID string
	// RevisionID is the action's current revision ("" when none).
	RevisionID string
}

// FillURL fills a settings URL template as CodePipeline does: {Config:Name}
// with the value of a required, non-secret configuration property,
// {ExternalExecutionId} with the job's external execution id, {RevisionId}
// with the action's revision. ok is false (and the URL is not shown) when
// the template is empty or a placeholder has no value: a half-filled link
// leads nowhere. A secret property's value is never put in a URL.
func (t *Type) FillURL(tmpl string, v URLValues) (url string, ok bool) {
	if tmpl == "" {
		return "", false
	}
	filled := true
	out := templateRef.ReplaceAllStringFunc(tmpl, func(ref string) string {
		name := templateRef.FindStringSubmatch(ref)[1]
		p, declared := t.Property(name)
		val, set := v.Configuration[name]
		if !declared || p.Required == nil || !*p.Required || t.IsSecret(name) || !set || val == "" {
			filled = false
			return ref
		}
		return val
	})
	if strings.Contains(out, externalIDRef) {
		if v.ExternalExecutionID == "" {
			return "", false
		}
		out = strings.ReplaceAll(out, externalIDRef, v.ExternalExecutionID)
	}
	if strings.Contains(out, revisionRef) {
		if v.RevisionID == "" {
			return "", false
		}
		out = strings.ReplaceAll(out, revisionRef, v.RevisionID)
	}
	if !filled {
		return "", false
	}
	return out, true
}
