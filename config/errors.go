package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem found in a configuration. Line is the 1-based
// line of the offending YAML node (0 when the configuration did not come
// from YAML, e.g. a Config built in code or imported from LIO), and Path
// names the key, e.g. "targets[0].luns[1].backstore".
type FieldError struct {
	File string
	Line int
	Path string
	Msg  string
}

// Error formats the problem as "[file: ]line N: path: message", leaving out
// the parts that are unknown.
func (e FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors lists every problem found in a configuration, in line order.
// Parse, Load, Validate and ImportLIO return it as their error; use
// errors.As to get at the individual FieldErrors.
type Errors []FieldError

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
