package config

import (
	"fmt"
	"sort"
	"strings"
)

// positions tells the validator where things are in the YAML source, so that
// its messages carry line numbers and name keys the way the user wrote them.
type positions struct {
	// lines maps a key path to the position of its value.
	lines map[string]position
	// short marks the targets written in the short form (portals, luns,
	// auth and acls directly under the target instead of under tpgs).
	short map[int]bool
	// quiet holds paths already reported by the decoder; the validator
	// stays silent about them and everything below them.
	quiet map[string]bool
}

// position is a place in the YAML source.
type position struct {
	line, column int
}

// at returns the position of path or of its nearest ancestor with one.
func (p *positions) at(path string) position {
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		if path == "" {
			return position{}
		}
		path = parentPath(path)
	}
}

func (p *positions) isQuiet(path string) bool {
	for ; path != ""; path = parentPath(path) {
		if p.quiet[path] {
			return true
		}
	}
	return false
}

// parentPath strips the last ".key" or "[i]" from path.
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// childPath joins a mapping key to path.
func childPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// indexPath joins a sequence index to path.
func indexPath(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

// reporter collects FieldErrors for both the decoder and the validator.
type reporter struct {
	pos  positions
	errs Errors
	// columns holds the source column of each error, to sort errors on
	// one line.
	columns []int
}

// report records a problem at a known position.
func (r *reporter) report(at position, path, msg string) {
	r.errs = append(r.errs, FieldError{Line: at.line, Path: path, Msg: msg})
	r.columns = append(r.columns, at.column)
}

// add reports a problem at path unless something at or above path has
// already been reported by the decoder.
func (r *reporter) add(path, format string, args ...any) {
	if r.pos.isQuiet(path) {
		return
	}
	r.report(r.pos.at(path), path, fmt.Sprintf(format, args...))
}

// result returns the collected problems in source order, or nil.
func (r *reporter) result() error {
	if len(r.errs) == 0 {
		return nil
	}
	order := make([]int, len(r.errs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if r.errs[a].Line != r.errs[b].Line {
			return r.errs[a].Line < r.errs[b].Line
		}
		return r.columns[a] < r.columns[b]
	})
	sorted := make(Errors, len(order))
	for i, k := range order {
		sorted[i] = r.errs[k]
	}
	return sorted
}
