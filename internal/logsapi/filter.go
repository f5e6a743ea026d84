package logsapi

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// ParsePattern compiles a CloudWatch Logs filter pattern of unstructured
// log events: terms that must all occur ("ERROR Exception"), quoted terms
// with spaces or punctuation ("\"out of memory\""), optional terms of which
// one must occur ("?ERROR ?WARN"), and terms that must not occur
// ("ERROR -Retrying"). Matching is case-sensitive, as on AWS. JSON
// ({...}), space-delimited ([...]) and regular-expression (%...%) patterns
// are refused by name. An empty pattern matches every event.
func ParsePattern(p string) (func([]byte) bool, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return func([]byte) bool { return true }, nil
	}
	switch p[0] {
	case '{':
		return nil, errors.New("JSON filter patterns ({...}) are not supported")
	case '[':
		return nil, errors.New("space-delimited filter patterns ([...]) are not supported")
	case '%':
		return nil, errors.New("regular-expression filter patterns (%...%) are not supported")
	}
	var must, any, not [][]byte
	for i := 0; i < len(p); {
		if p[i] == ' ' || p[i] == '\t' {
			i++
			continue
		}
		kind := byte(0)
		if p[i] == '?' || p[i] == '-' {
			kind = p[i]
			i++
		}
		var term string
		if i < len(p) && p[i] == '"' {
			j := i + 1
			var b strings.Builder
			for ; j < len(p) && p[j] != '"'; j++ {
				if p[j] == '\\' && j+1 < len(p) {
					j++
				}
				b.WriteByte(p[j])
			}
			if j >= len(p) {
				return nil, fmt.Errorf("unterminated quoted term at position %d", i+1)
			}
			term, i = b.String(), j+1
		} else {
			j := i
			for j < len(p) && p[j] != ' ' && p[j] != '\t' {
				j++
			}
			term, i = p[i:j], j
		}
		if term == "" {
			if kind == 0 {
				continue
			}
			return nil, fmt.Errorf("%q must be followed by a term", string(kind))
		}
		switch kind {
		case '?':
			any = append(any, []byte(term))
		case '-':
			not = append(not, []byte(term))
		default:
			must = append(must, []byte(term))
		}
	}
	if len(must) == 0 && len(any) == 0 && len(not) > 0 {
		return nil, errors.New("a pattern of only excluded terms matches nothing: add a term to include")
	}
	return func(msg []byte) bool {
		for _, t := range must {
			if !bytes.Contains(msg, t) {
				return false
			}
		}
		for _, t := range not {
			if bytes.Contains(msg, t) {
				return false
			}
		}
		if len(any) == 0 {
			return true
		}
		for _, t := range any {
			if bytes.Contains(msg, t) {
				return true
			}
		}
		return false
	}, nil
}
