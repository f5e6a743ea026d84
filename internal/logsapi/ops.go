package logsapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pipelined/pipelined/internal/logsapi/logswire"
	"github.com/pipelined/pipelined/internal/store"
)

// Limits of the model and of CloudWatch Logs' responses.
const (
	maxEvents       = 10000       // EventsLimit
	maxDescribe     = 50          // DescribeLimit
	maxResponseSize = 1 << 20     // a page of events holds at most 1 MB of messages
	maxScanBytes    = 16 << 20    // FilterLogEvents scans at most this much per call
	maxFilterStream = 10000       // FilterLogEvents merges at most this many streams
	eventOverhead   = 26          // bytes CloudWatch counts per event
	maxNameLen      = 512         // LogGroupName, LogStreamName
	maxTokenLen     = 4096        // nextToken
	maxNames        = 100         // InputLogStreamNames
	maxPatternLen   = 1024        // FilterPattern
	maxIDLen        = 2048        // LogGroupIdentifier
	farFuture       = 1 << 53     // an endTime that is no bound
	timeParamMax    = int64(1e15) // sanity bound of a millisecond time
)

var (
	groupNamePattern  = regexp.MustCompile(`^[\.\-_/#A-Za-z0-9]+$`)
	streamNamePattern = regexp.MustCompile(`^[^:*]*$`)
)

// validation builds InvalidParameterException messages in AWS's style.
type validation []string

func (v *validation) add(value, field, constraint string) {
	*v = append(*v, fmt.Sprintf("Value '%s' at '%s' failed to satisfy constraint: %s", value, field, constraint))
}

func (v *validation) name(s, field string, re *regexp.Regexp, pattern string) {
	switch {
	case s == "":
		return
	case len(s) > maxNameLen:
		v.add(s, field, fmt.Sprintf("Member must have length less than or equal to %d", maxNameLen))
	case !re.MatchString(s):
		v.add(s, field, "Member must satisfy regular expression pattern: "+pattern)
	}
}

func (v *validation) limit(n *int, field string, max int) {
	if n != nil && (*n < 1 || *n > max) {
		c := "Member must have value greater than or equal to 1"
		if *n > max {
			c = fmt.Sprintf("Member must have value less than or equal to %d", max)
		}
		v.add(strconv.Itoa(*n), field, c)
	}
}

func (v *validation) time(n *int, field string) {
	if n != nil && (*n < 0 || int64(*n) > timeParamMax) {
		v.add(strconv.Itoa(*n), field, "Member must have value greater than or equal to 0")
	}
}

func (v *validation) token(s, field string) {
	if len(s) > maxTokenLen {
		v.add(s[:32]+"...", field, fmt.Sprintf("Member must have length less than or equal to %d", maxTokenLen))
	}
}

func (v validation) err() error {
	if len(v) == 0 {
		return nil
	}
	word := "error"
	if len(v) > 1 {
		word = "errors"
	}
	return invalid("%d validation %s detected: %s", len(v), word, strings.Join(v, "; "))
}

func (h *Handler) groupARN(pipeline string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s%s", h.cfg.Region, h.cfg.AccountID, GroupPrefix, pipeline)
}

// StreamARN is the ARN of a stream of a pipeline's group (ListActionExecutions'
// logStreamARN).
func StreamARN(region, accountID, pipeline, stream string) string {
	return fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s%s:log-stream:%s", region, accountID, GroupPrefix, pipeline, stream)
}

// group resolves logGroupName or logGroupIdentifier (a name or an ARN) to
// the pipeline whose group it is.
func (h *Handler) group(ctx context.Context, name, ident string) (string, error) {
	switch {
	case name != "" && ident != "":
		return "", invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
	case name == "" && ident == "":
		return "", invalid("Either logGroupName or logGroupIdentifier must be specified.")
	case ident != "":
		if len(ident) > maxIDLen {
			return "", invalid("logGroupIdentifier: at most %d characters", maxIDLen)
		}
		name = ident
		if strings.HasPrefix(ident, "arn:") {
			prefix := fmt.Sprintf("arn:aws:logs:%s:%s:log-group:", h.cfg.Region, h.cfg.AccountID)
			rest, ok := strings.CutPrefix(ident, prefix)
			if !ok {
				return "", notFound("The specified log group does not exist.")
			}
			name = strings.TrimSuffix(rest, ":*")
		}
	}
	var v validation
	v.name(name, "logGroupName", groupNamePattern, `[\.\-_/#A-Za-z0-9]+`)
	if err := v.err(); err != nil {
		return "", err
	}
	pipeline, ok := strings.CutPrefix(name, GroupPrefix)
	if !ok || pipeline == "" {
		return "", notFound("The specified log group does not exist.")
	}
	streams, err := h.cfg.Store.ListLogStreams(ctx, store.LogStreamQuery{Pipeline: pipeline, Limit: 1})
	if err != nil {
		return "", err
	}
	if len(streams) == 0 {
		return "", notFound("The specified log group does not exist.")
	}
	return pipeline, nil
}

// ---------------------------------------------------------------------------
// DescribeLogGroups
// ---------------------------------------------------------------------------

func describeLogGroups(h *Handler, ctx context.Context, body []byte) (any, error) {
	var in logswire.DescribeLogGroupsRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validation
	v.name(in.LogGroupNamePrefix, "logGroupNamePrefix", groupNamePattern, `[\.\-_/#A-Za-z0-9]+`)
	v.limit(in.Limit, "limit", maxDescribe)
	v.token(in.NextToken, "nextToken")
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.LogGroupNamePrefix != "" && in.LogGroupNamePattern != "" {
		return nil, invalid("logGroupNamePrefix and logGroupNamePattern are mutually exclusive parameters.")
	}
	if in.LogGroupClass != "" && in.LogGroupClass != "STANDARD" {
		return &logswire.DescribeLogGroupsResponse{LogGroups: []logswire.LogGroup{}}, nil
	}
	limit := maxDescribe
	if in.Limit != nil {
		limit = *in.Limit
	}
	after := ""
	if in.NextToken != "" {
		t, err := decodeToken(in.NextToken)
		if err != nil || t.Kind != "g" {
			return nil, invalid("The specified nextToken is invalid.")
		}
		after = t.Stream
	}
	// Which pipelines the prefix can name.
	prefix, ok := "", true
	switch p := in.LogGroupNamePrefix; {
	case strings.HasPrefix(GroupPrefix, p):
	case strings.HasPrefix(p, GroupPrefix):
		prefix = p[len(GroupPrefix):]
	default:
		ok = false
	}
	out := &logswire.DescribeLogGroupsResponse{LogGroups: []logswire.LogGroup{}}
	if !ok {
		return out, nil
	}
	for {
		groups, err := h.cfg.Store.ListLogGroups(ctx, prefix, after, limit+1)
		if err != nil {
			return nil, err
		}
		for _, g := range groups {
			after = g.Pipeline
			name := GroupPrefix + g.Pipeline
			if in.LogGroupNamePattern != "" && !strings.Contains(name, in.LogGroupNamePattern) { // case-sensitive, as on AWS
				continue
			}
			if len(out.LogGroups) == limit {
				out.NextToken = encodeToken(token{Kind: "g", Stream: out.LogGroups[limit-1].LogGroupName[len(GroupPrefix):]})
				return out, nil
			}
			lg := logswire.LogGroup{
				LogGroupName: name, CreationTime: ptr(int(g.Created.UnixMilli())), MetricFilterCount: ptr(0),
				Arn: h.groupARN(g.Pipeline) + ":*", LogGroupArn: h.groupARN(g.Pipeline),
				StoredBytes: ptr(int(g.StoredBytes)), LogGroupClass: "STANDARD",
			}
			if h.cfg.RetentionDays > 0 {
				lg.RetentionInDays = ptr(h.cfg.RetentionDays)
			}
			out.LogGroups = append(out.LogGroups, lg)
		}
		if len(groups) <= limit {
			return out, nil
		}
	}
}

func ptr[T any](v T) *T { return &v }

// ---------------------------------------------------------------------------
// DescribeLogStreams
// ---------------------------------------------------------------------------

func describeLogStreams(h *Handler, ctx context.Context, body []byte) (any, error) {
	var in logswire.DescribeLogStreamsRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validation
	v.name(in.LogStreamNamePrefix, "logStreamNamePrefix", streamNamePattern, `[^:*]*`)
	v.limit(in.Limit, "limit", maxDescribe)
	v.token(in.NextToken, "nextToken")
	if in.OrderBy != "" && in.OrderBy != "LogStreamName" && in.OrderBy != "LastEventTime" {
		v.add(string(in.OrderBy), "orderBy", "Member must satisfy enum value set: [LogStreamName, LastEventTime]")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if in.OrderBy == "LastEventTime" && in.LogStreamNamePrefix != "" {
		return nil, invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
	}
	pipeline, err := h.group(ctx, in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	limit := maxDescribe
	if in.Limit != nil {
		limit = *in.Limit
	}
	descending := in.Descending != nil && *in.Descending
	var tok token
	if in.NextToken != "" {
		if tok, err = decodeToken(in.NextToken); err != nil || tok.Kind != "s" {
			return nil, invalid("The specified nextToken is invalid.")
		}
	}
	out := &logswire.DescribeLogStreamsResponse{LogStreams: []logswire.LogStream{}}
	var page []store.LogStream
	if in.OrderBy != "LastEventTime" && !descending {
		// Name order, ascending: straight from the store's index.
		page, err = h.cfg.Store.ListLogStreams(ctx, store.LogStreamQuery{Pipeline: pipeline, Prefix: in.LogStreamNamePrefix, After: tok.Stream, Limit: limit + 1})
		if err != nil {
			return nil, err
		}
		if len(page) > limit {
			page = page[:limit]
			out.NextToken = encodeToken(token{Kind: "s", Stream: page[limit-1].Name})
		}
	} else {
		// Other orders sort the group's streams here (a group holds one
		// pipeline's streams, bounded by the retention).
		all, err := h.cfg.Store.ListLogStreams(ctx, store.LogStreamQuery{Pipeline: pipeline, Prefix: in.LogStreamNamePrefix, Limit: maxFilterStream})
		if err != nil {
			return nil, err
		}
		if in.OrderBy == "LastEventTime" {
			slices.SortStableFunc(all, func(a, b store.LogStream) int { return a.LastEvent.Compare(b.LastEvent) })
		}
		if descending {
			slices.Reverse(all)
		}
		start := int(tok.Offset)
		if start > len(all) {
			start = len(all)
		}
		end := min(start+limit, len(all))
		page = all[start:end]
		if end < len(all) {
			out.NextToken = encodeToken(token{Kind: "s", Offset: int64(end)})
		}
	}
	for _, ls := range page {
		st := logswire.LogStream{
			LogStreamName: ls.Name, CreationTime: ptr(int(ls.Created.UnixMilli())),
			LastIngestionTime: ptr(int(ls.Updated.UnixMilli())),
			Arn:               StreamARN(h.cfg.Region, h.cfg.AccountID, pipeline, ls.Name),
			StoredBytes:       ptr(0), // deprecated by AWS, which answers 0
		}
		if !ls.FirstEvent.IsZero() {
			st.FirstEventTimestamp = ptr(int(ls.FirstEvent.UnixMilli()))
			st.LastEventTimestamp = ptr(int(ls.LastEvent.UnixMilli()))
		}
		out.LogStreams = append(out.LogStreams, st)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

// token is the state of a paginated call, sent base64url-encoded JSON. It
// holds positions only, never log contents.
type token struct {
	Kind   string `json:"k"`           // g: groups, s: streams, e: events
	Stream string `json:"s,omitempty"` // the last group or stream name
	Time   int64  `json:"t,omitempty"` // events: the last event's time
	Offset int64  `json:"o,omitempty"` // events: the last event's offset; streams: an index
}

func encodeToken(t token) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadToken = errors.New("logsapi: malformed token")

func decodeToken(s string) (token, error) {
	var t token
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > maxTokenLen {
		return t, errBadToken
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil || t.Offset < 0 || t.Time < 0 || len(t.Stream) > maxNameLen || !utf8.ValidString(t.Stream) {
		return token{}, errBadToken
	}
	switch t.Kind {
	case "g", "s", "e":
		return t, nil
	}
	return token{}, errBadToken
}

// eventID is a FilterLogEvents event id: 56 digits, unique in the group
// (the stream's job id hashed, then the event's byte offset).
func eventID(jobID string, offset int64) string {
	h := sha256.Sum256([]byte(jobID))
	return fmt.Sprintf("%036d%020d", binary.BigEndian.Uint64(h[:8]), offset)
}

func msParam(n *int, def int64) int64 {
	if n == nil {
		return def
	}
	return int64(*n)
}

var _ = time.Now
