package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Operator is a VariableCheck operator.
type Operator string

// VariableCheck operators: the four of the rule reference (EQ, NE,
// CONTAINS, MATCHES) and the numeric comparisons GREATER_THAN and LESS_THAN.
const (
	OpEQ          Operator = "EQ"
	OpNE          Operator = "NE"
	OpContains    Operator = "CONTAINS"
	OpMatches     Operator = "MATCHES"
	OpGreaterThan Operator = "GREATER_THAN"
	OpLessThan    Operator = "LESS_THAN"
)

// maxOperand bounds what a check compares or compiles (a variable value is
// at most 1 KiB on AWS; a regular expression larger than this is refused).
const maxOperand = 4096

// ParseOperator reads a VariableCheck operator.
func ParseOperator(s string) (Operator, error) {
	switch op := Operator(s); op {
	case OpEQ, OpNE, OpContains, OpMatches, OpGreaterThan, OpLessThan:
		return op, nil
	}
	return "", fmt.Errorf("operator '%s' is not one of EQ, NE, CONTAINS, MATCHES, GREATER_THAN, LESS_THAN", s)
}

// Check evaluates a VariableCheck on a resolved variable: whether variable
// <operator> value holds. A false check is not an error; the error says why
// the check could not be made (a number that is not one, a bad regular
// expression).
func Check(op Operator, variable, value string) (bool, error) {
	if len(variable) > maxOperand || len(value) > maxOperand {
		return false, fmt.Errorf("an operand is longer than %d bytes", maxOperand)
	}
	switch op {
	case OpEQ:
		return variable == value, nil
	case OpNE:
		return variable != value, nil
	case OpContains:
		return strings.Contains(variable, value), nil
	case OpMatches:
		// Go's RE2 syntax: the common subset of Java's (no backreferences or
		// lookaround). The whole variable must match, as Java's
		// Pattern.matches requires.
		re, err := regexp.Compile(`^(?:` + value + `)$`)
		if err != nil {
			return false, fmt.Errorf("value '%s' is not a valid regular expression: %v", value, err)
		}
		return re.MatchString(variable), nil
	case OpGreaterThan, OpLessThan:
		a, err := number(variable)
		if err != nil {
			return false, fmt.Errorf("variable value '%s' is not a number, which %s needs", variable, op)
		}
		b, err := number(value)
		if err != nil {
			return false, fmt.Errorf("value '%s' is not a number, which %s needs", value, op)
		}
		if op == OpGreaterThan {
			return a > b, nil
		}
		return a < b, nil
	}
	return false, fmt.Errorf("operator '%s' is not one of EQ, NE, CONTAINS, MATCHES, GREATER_THAN, LESS_THAN", op)
}

func number(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, err
	}
	if f != f { // NaN compares false to everything: refuse it
		return 0, fmt.Errorf("NaN")
	}
	return f, nil
}
