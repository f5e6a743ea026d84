package executions

import "github.com/pipelined/pipelined/internal/wire"

// SetLogStreamARN sets how ListActionExecutions names the log stream of an
// action execution (output.executionResult.logStreamARN): fn returns the
// ARN, or "" for an action whose type writes no log.
func (s *Service) SetLogStreamARN(fn func(pipeline, actionExecutionID string, t *wire.ActionTypeId) string) {
	s.logStreamARN = fn
}
