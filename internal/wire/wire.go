// Package wire is the CodePipeline wire layer: the JSON shapes of every
// request and response, their validators and the dispatch table of the
// operations. Most of it is generated from the AWS service model by ./gen;
// this file holds the hand-written runtime the generated code uses.
package wire

//go:generate go run ./gen -model model/codepipeline-2015-07-09.json.gz -out .

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Error is an error the API answers with: Code becomes the __type of the
// response body and Message its message. Services return *Error for every
// failure the caller should see; anything else is an internal error.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Codes that are not exceptions of the service model but that every AWS JSON
// service answers with.
const (
	ErrSerialization              = "SerializationException"
	ErrUnknownOperation           = "UnknownOperationException"
	ErrUnsupportedOperation       = "UnsupportedOperationException"
	ErrInternalFailure            = "InternalFailure"
	ErrMissingAuthenticationToken = "MissingAuthenticationTokenException"
	ErrIncompleteSignature        = "IncompleteSignatureException"
	ErrUnrecognizedClient         = "UnrecognizedClientException"
	ErrInvalidSignature           = "InvalidSignatureException"
	ErrAccessDenied               = "AccessDeniedException"
	ErrThrottling                 = "ThrottlingException"
	ErrRequestEntityTooLarge      = "RequestEntityTooLargeException"
	ErrInvalidClientTokenID       = "InvalidClientTokenId"
)

// AsError returns err as an *Error when it is (or wraps) one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// NotImplemented is the answer of an operation pipelined does not serve yet.
func NotImplemented(op string) error {
	return Errorf(ErrUnsupportedOperation, "pipelined does not implement the %s operation yet", op)
}

// Operation is one row of the dispatch table.
type Operation struct {
	Name string
	// Errors are the exception codes the model lists for the operation.
	Errors []string
	// Call decodes and validates the JSON body, then calls the API. Its first
	// result is nil for operations without an output shape.
	Call func(ctx context.Context, api API, body []byte) (any, error)
}

// Decode is decode for the wire layers generated into other packages
// (internal/wire/gen -package).
func Decode(body []byte, in any) error { return decode(body, in) }

// decode reads a request body. An empty body is an empty object, as the AWS
// JSON protocol allows. Unknown members are ignored, as AWS does; a value of
// the wrong JSON type is a SerializationException.
func decode(body []byte, in any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, in); err != nil {
		// Say what the client sent wrong in the model's terms (JSON path,
		// expected JSON type); Go type names (wire.ListPipelinesInput) mean
		// nothing to a client.
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			if ute.Field == "" {
				return Errorf(ErrSerialization, "The request body must be %s, got JSON %s", jsonTypeName(ute.Type), ute.Value)
			}
			return Errorf(ErrSerialization, "Unexpected value for member '%s': expected %s, got JSON %s", ute.Field, jsonTypeName(ute.Type), ute.Value)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Errorf(ErrSerialization, "Request body is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
		}
		var te *timestampError
		if errors.As(err, &te) {
			return Errorf(ErrSerialization, "Unexpected value for a timestamp member: expected %s, got %.64q", jsonTypeName(timestampType), te.value)
		}
		return Errorf(ErrSerialization, "Request body is not valid JSON")
	}
	return nil
}

// timestampError: a timestamp member that is not epoch seconds.
type timestampError struct{ value string }

func (e *timestampError) Error() string { return "timestamp " + e.value + " is not epoch seconds" }

var timestampType = reflect.TypeFor[Timestamp]()

// jsonTypeName names a wire type as the JSON a client must send for it.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "another JSON type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timestampType {
		return "a timestamp (epoch seconds, a JSON number)"
	}
	switch t.Kind() {
	case reflect.Struct:
		return "a JSON object (structure)"
	case reflect.Map:
		return "a JSON object (map) of " + plural(t.Elem())
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string (blob)"
		}
		return "a JSON array (list) of " + plural(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return "an integer"
	case reflect.Int64, reflect.Uint64, reflect.Uint:
		return "an integer (long)"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "another JSON type"
}

// plural names the elements of a list or map.
func plural(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timestampType:
		return "timestamps"
	case t.Kind() == reflect.Struct:
		return "JSON objects (structures)"
	case t.Kind() == reflect.String:
		return "strings"
	case t.Kind() == reflect.Map, t.Kind() == reflect.Slice:
		return "values, each " + jsonTypeName(t)
	}
	return "values, each " + jsonTypeName(t)
}

// Timestamp is a point in time as the AWS JSON protocol sends it: epoch
// seconds, a JSON number with millisecond precision. It is a float64 so that
// encoding/json writes it natively (shortest form, e.g. 1700000000.123); a
// MarshalJSON method would make the encoder re-validate every timestamp of
// every list response.
type Timestamp float64

// TimeOf returns a *Timestamp for t, truncated to milliseconds.
func TimeOf(t time.Time) *Timestamp {
	ts := Timestamp(float64(t.UnixMilli()) / 1000)
	return &ts
}

// Time returns the time.Time value, in UTC, rounded to microseconds (a
// float64 of epoch seconds holds no more).
func (t Timestamp) Time() time.Time {
	sec, frac := math.Modf(float64(t))
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
}

// UnmarshalJSON accepts epoch seconds (the protocol) and, leniently, an
// RFC 3339 string. Values beyond year 33658 or not finite are refused.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if tt, err := time.Parse(time.RFC3339Nano, s); err == nil {
			*t = Timestamp(float64(tt.UnixMicro()) / 1e6)
			return nil
		}
		b = []byte(s)
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
		return &timestampError{value: string(b)}
	}
	*t = Timestamp(f)
	return nil
}

// Validator collects constraint violations in the words AWS uses, so that a
// client sees the same ValidationException message it would from AWS:
//
//	1 validation error detected: Value 'x y' at 'pipeline.name' failed to satisfy
//	constraint: Member must satisfy regular expression pattern: [A-Za-z0-9.@\-_]+
type Validator struct {
	errs []string
}

const mapKeyMark = "\x00key"

// Join appends a member name to a path.
func (v *Validator) Join(path, member string) string {
	if path == "" {
		return member
	}
	return path + "." + member
}

// Member is the path of the i-th element of a list, as AWS names it (1-based).
func (v *Validator) Member(path string, i int) string {
	return path + "." + strconv.Itoa(i+1) + ".member"
}

// MapKey marks a path as naming the keys of a map.
func (v *Validator) MapKey(path, _ string) string { return path + mapKeyMark }

// MapValue is the path of the value at key k.
func (v *Validator) MapValue(path, k string) string { return path + "." + k }

// Add records a violation of a rule that is not in the model (the service's own).
func (v *Validator) Add(path string, value string, constraint string) {
	v.add(path, true, "'"+value+"'", constraint)
}

func (v *Validator) add(path string, present bool, value, constraint string) {
	if p, ok := strings.CutSuffix(path, mapKeyMark); ok {
		v.errs = append(v.errs, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: Map keys must satisfy constraint: [%s]", value, p, constraint))
		return
	}
	if !present {
		v.errs = append(v.errs, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: %s", path, constraint))
		return
	}
	if value == "" {
		v.errs = append(v.errs, fmt.Sprintf("Value at '%s' failed to satisfy constraint: %s", path, constraint))
		return
	}
	v.errs = append(v.errs, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: %s", value, path, constraint))
}

func shown(sensitive bool, s string) string {
	if sensitive {
		return "" // the value of a sensitive member never appears in a message
	}
	return "'" + s + "'"
}

// Missing records a required member that is absent.
func (v *Validator) Missing(path string) {
	v.add(path, false, "", "Member must not be null")
}

// Length checks a string's length (min or max -1 for no bound).
func (v *Validator) Length(path string, sensitive bool, s string, min, max int) {
	n := len([]rune(s))
	if min >= 0 && n < min {
		v.add(path, true, shown(sensitive, s), fmt.Sprintf("Member must have length greater than or equal to %d", min))
	}
	if max >= 0 && n > max {
		v.add(path, true, shown(sensitive, s), fmt.Sprintf("Member must have length less than or equal to %d", max))
	}
}

// Pattern checks a string against an anchored pattern of the model.
func (v *Validator) Pattern(path string, sensitive bool, s string, re *regexp.Regexp) {
	if !re.MatchString(s) {
		text, ok := patternText[re]
		if !ok {
			// A pattern of a wire layer generated into another package:
			// the model's text is the compiled one without its anchors.
			text = strings.TrimSuffix(strings.TrimPrefix(re.String(), "^(?:"), ")$")
		}
		v.add(path, true, shown(sensitive, s), "Member must satisfy regular expression pattern: "+text)
	}
}

// Enum checks a string against the values of an enum.
func (v *Validator) Enum(path, s string, values []string) {
	for _, x := range values {
		if x == s {
			return
		}
	}
	v.add(path, true, "'"+s+"'", "Member must satisfy enum value set: ["+strings.Join(values, ", ")+"]")
}

// Range checks an integer's value.
func (v *Validator) Range(path string, n, min, max int) {
	if min >= 0 && n < min {
		v.add(path, true, "'"+strconv.Itoa(n)+"'", fmt.Sprintf("Member must have value greater than or equal to %d", min))
	}
	if max >= 0 && n > max {
		v.add(path, true, "'"+strconv.Itoa(n)+"'", fmt.Sprintf("Member must have value less than or equal to %d", max))
	}
}

// Count checks the number of elements of a list or map.
func (v *Validator) Count(path string, n, min, max int) {
	if min >= 0 && n < min {
		v.add(path, true, "", fmt.Sprintf("Member must have length greater than or equal to %d", min))
	}
	if max >= 0 && n > max {
		v.add(path, true, "", fmt.Sprintf("Member must have length less than or equal to %d", max))
	}
}

// Err returns the ValidationException for the collected violations, or nil.
func (v *Validator) Err() error {
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return &Error{Code: ErrValidation, Message: "1 validation error detected: " + v.errs[0]}
	}
	return &Error{Code: ErrValidation, Message: fmt.Sprintf("%d validation errors detected: %s", len(v.errs), strings.Join(v.errs, "; "))}
}

// Validate runs the model's validators on a decoded input.
func Validate(in interface{ Validate(*Validator, string) }) error {
	var v Validator
	in.Validate(&v, "")
	return v.Err()
}

// Ptr returns a pointer to v: for the optional scalars of the wire types.
func Ptr[T any](v T) *T { return &v }
