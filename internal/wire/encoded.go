package wire

import "encoding/json"

// EncodedPipeline returns a PipelineDeclaration whose JSON encoding is b,
// which must be the compact JSON encoding of a PipelineDeclaration (as
// json.Marshal produced it). Its Go fields are all empty: it exists to be
// encoded, so that GetPipeline can answer with the stored definition without
// decoding and re-encoding it (a fifth of the server's CPU per call).
func EncodedPipeline(b []byte) *PipelineDeclaration {
	return &PipelineDeclaration{encoded: b}
}

// IsEncoded reports whether p carries only its encoding (see EncodedPipeline).
func (p *PipelineDeclaration) IsEncoded() bool { return p != nil && p.encoded != nil }

// plainPipeline has PipelineDeclaration's fields without its methods, so that
// MarshalJSON can use the default encoding without recursing.
type plainPipeline PipelineDeclaration

func (p *PipelineDeclaration) MarshalJSON() ([]byte, error) {
	if p.encoded != nil {
		return p.encoded, nil
	}
	return json.Marshal((*plainPipeline)(p))
}
