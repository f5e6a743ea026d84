package pipelines

import (
	"context"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/wire"
)

// sealSecrets replaces the value of every secret configuration property of p
// with its sealed form. A value of SecretMask keeps the sealed value of the
// same property of the same action in prev (UpdatePipeline sends back what
// GetPipeline showed); without such a value it is an error, since storing the
// mask itself would silently break the action.
func (s *Service) sealSecrets(ctx context.Context, p, prev *wire.PipelineDeclaration) error {
	for si := range p.Stages {
		st := &p.Stages[si]
		for ai := range st.Actions {
			a := &st.Actions[ai]
			if len(a.Configuration) == 0 {
				continue
			}
			t, err := s.resolveType(ctx, actiontypes.KeyOf(a.ActionTypeId))
			if err != nil {
				return err
			}
			for name, value := range a.Configuration {
				if !t.IsSecret(name) {
					continue
				}
				if value == SecretMask {
					kept, ok := previousValue(prev, st.Name, a.Name, name)
					if !ok {
						return actionErr("Configuration '%s' of action '%s' is '%s', the mask GetPipeline shows for secret values, but there is no stored value to keep: send the secret itself", name, a.Name, SecretMask)
					}
					a.Configuration[name] = kept
					continue
				}
				a.Configuration[name] = s.sealer.Seal(value, sealContext(p.Name))
			}
		}
	}
	return nil
}

// previousValue finds the stored (sealed) value of a property in prev.
func previousValue(prev *wire.PipelineDeclaration, stage, action, prop string) (string, bool) {
	if prev == nil {
		return "", false
	}
	for _, st := range prev.Stages {
		if st.Name != stage {
			continue
		}
		for _, a := range st.Actions {
			if a.Name == action {
				v, ok := a.Configuration[prop]
				return v, ok && secrets.IsSealed(v)
			}
		}
	}
	return "", false
}

// maskSecrets replaces every sealed value with SecretMask. Sealed values are
// recognizable by their prefix, so masking needs no action-type lookups on
// the read path.
func (s *Service) maskSecrets(p *wire.PipelineDeclaration) {
	for si := range p.Stages {
		for ai := range p.Stages[si].Actions {
			cfg := p.Stages[si].Actions[ai].Configuration
			for k, v := range cfg {
				if secrets.IsSealed(v) {
					cfg[k] = SecretMask
				}
			}
		}
	}
}

// OpenSecret returns the clear value of a sealed configuration value of the
// named pipeline (for job data, later). Values that are not sealed are
// returned as they are.
func (s *Service) OpenSecret(pipeline, value string) (string, error) {
	if !secrets.IsSealed(value) {
		return value, nil
	}
	return s.sealer.Open(value, sealContext(pipeline))
}

// SealSecret seals a clear value as a secret configuration value of the
// named pipeline (the engine re-seals a secret value after resolving its
// variables).
func (s *Service) SealSecret(pipeline, value string) string {
	return s.sealer.Seal(value, sealContext(pipeline))
}

// IsSecret reports whether a configuration value is a sealed secret.
func (s *Service) IsSecret(value string) bool { return secrets.IsSealed(value) }

// MaskSecrets returns cfg with every sealed value replaced by SecretMask.
func (s *Service) MaskSecrets(cfg map[string]string) map[string]string {
	if len(cfg) == 0 {
		return cfg
	}
	out := make(map[string]string, len(cfg))
	for k, v := range cfg {
		if secrets.IsSealed(v) {
			v = SecretMask
		}
		out[k] = v
	}
	return out
}
