// Command soak runs the model-based stress mix of conformance/stress
// against a running odxtgt for a long time, for conformance/stress/soak.sh,
// and samples the target's metrics endpoint meanwhile: every -interval it
// writes a CSV row with the commands and copy bytes per second since the
// last sample, the resident memory, Go heap in use, goroutines and open files of the
// process, and the live ROD tokens. At the end it prints a summary (the
// mix's own statistics, the rates, the 99th percentile of the command
// latency per class from the target's histograms) and fails when the mix
// found a difference from the model or when memory, goroutines or open
// files kept growing: the mean of the last quarter of the samples against
// the mean of the second (the first is the warm-up).
//
//	soak -addr 127.0.0.1:3260 -target IQN -luns 0,1,2 -metrics http://127.0.0.1:9469/metrics -duration 10m -csv soak.csv
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/odxtgt/odxtgt/conformance/stress"
)

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:3260", "target portal")
	flag.StringVar(&o.target, "target", "", "target name")
	luns := flag.String("luns", "0", "comma-separated LUNs, all with 512-byte blocks")
	flag.StringVar(&o.metricsURL, "metrics", "", "the target's /metrics URL")
	flag.IntVar(&o.sessions, "sessions", 16, "sessions")
	flag.IntVar(&o.workers, "workers", 2, "workers per session")
	flag.DurationVar(&o.duration, "duration", 10*time.Minute, "how long to run")
	flag.DurationVar(&o.interval, "interval", 10*time.Second, "time between samples")
	flag.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "seed of the mix")
	flag.StringVar(&o.csvPath, "csv", "soak.csv", "where the samples go")
	flag.Parse()
	for f := range strings.SplitSeq(*luns, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "soak: -luns: %v\n", err)
			os.Exit(2)
		}
		o.luns = append(o.luns, n)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	addr, target, metricsURL, csvPath string
	luns                              []uint64
	sessions, workers                 int
	duration, interval                time.Duration
	seed                              uint64
}

// sample is one scrape of the metrics endpoint.
type sample struct {
	at                         time.Duration // since the start
	commands, copyBytes        float64       // counters, summed over labels
	rss, heap, goroutines, fds float64
	toks                       float64
}

func run(o options) error {
	if o.metricsURL == "" || o.interval <= 0 {
		return errors.New("-metrics and a positive -interval are needed")
	}
	csv, err := os.Create(o.csvPath)
	if err != nil {
		return err
	}
	defer csv.Close()
	fmt.Fprintln(csv, "seconds,commands_per_s,copy_mib_per_s,rss_mib,heap_mib,goroutines,open_fds,rod_tokens")

	fmt.Printf("soak: seed %d, %d sessions of %d workers, %v\n", o.seed, o.sessions, o.workers, o.duration)
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		stats *stress.Stats
		err   error
	}
	done := make(chan result, 1)
	go func() {
		st, err := stress.Run(ctx, stress.Config{
			Addr: o.addr, Target: o.target,
			Initiators: []string{"iqn.1991-05.com.microsoft:soak-a", "iqn.1998-01.com.vmware:soak-b", "iqn.2004-10.com.ubuntu:soak-c"},
			LUNs:       o.luns, Sessions: o.sessions, Workers: o.workers, Seed: o.seed, Duration: o.duration,
		})
		done <- result{st, err}
	}()

	var samples []sample
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	var res result
	for waiting := true; waiting; {
		select {
		case res = <-done:
			waiting = false
		case <-tick.C:
		}
		m, err := scrape(o.metricsURL)
		if err != nil {
			return fmt.Errorf("scrape: %w", err)
		}
		s := sample{
			at:       time.Since(start),
			commands: m.sum("odxtgt_scsi_commands_total"), copyBytes: m.sum("odxtgt_copy_bytes_total"),
			rss: m.sum("process_resident_memory_bytes"), heap: m.sum("go_memstats_heap_inuse_bytes"), goroutines: m.sum("go_goroutines"),
			fds: m.sum("process_open_fds"), toks: m.sum("odxtgt_rod_tokens"),
		}
		prev := sample{}
		if len(samples) > 0 {
			prev = samples[len(samples)-1]
		}
		dt := max((s.at - prev.at).Seconds(), 1e-3)
		fmt.Fprintf(csv, "%.0f,%.0f,%.2f,%.1f,%.1f,%.0f,%.0f,%.0f\n", s.at.Seconds(), (s.commands-prev.commands)/dt,
			(s.copyBytes-prev.copyBytes)/dt/(1<<20), s.rss/(1<<20), s.heap/(1<<20), s.goroutines, s.fds, s.toks)
		samples = append(samples, s)
		if !waiting {
			fmt.Println("soak: p99 command latency by class:", p99s(m))
		}
	}
	if res.stats != nil {
		fmt.Println("soak: mix:", res.stats)
	}
	last := samples[len(samples)-1]
	secs := last.at.Seconds()
	fmt.Printf("soak: %.0f commands/s, %.1f MiB/s copied inside the target, over %.0f s\n", last.commands/secs, last.copyBytes/secs/(1<<20), secs)
	if res.err != nil {
		return fmt.Errorf("the mix failed (seed %d): %w", o.seed, res.err)
	}
	return growth(samples)
}

// growth fails when memory, goroutines or open files of the last quarter
// of the samples are clearly above those of the second quarter.
func growth(samples []sample) error {
	n := len(samples)
	if n < 8 {
		fmt.Printf("soak: %d samples, too few to judge growth\n", n)
		return nil
	}
	mean := func(part []sample, f func(sample) float64) float64 {
		var t float64
		for _, s := range part {
			t += f(s)
		}
		return t / float64(len(part))
	}
	second, fourth := samples[n/4:n/2], samples[3*n/4:]
	var errs []error
	for _, c := range []struct {
		name        string
		f           func(sample) float64
		ratio, plus float64
	}{
		{"resident memory (bytes)", func(s sample) float64 { return s.rss }, 1.5, 16 << 20},
		{"goroutines", func(s sample) float64 { return s.goroutines }, 1.2, 50},
		{"open files", func(s sample) float64 { return s.fds }, 1.2, 16},
	} {
		a, b := mean(second, c.f), mean(fourth, c.f)
		fmt.Printf("soak: %s: %.0f in the second quarter, %.0f in the last\n", c.name, a, b)
		if b > a*c.ratio+c.plus {
			errs = append(errs, fmt.Errorf("%s grew from %.0f to %.0f", c.name, a, b))
		}
	}
	return errors.Join(errs...)
}

// metricSet is a scrape: every sample line's name, labels and value.
type metricSet []struct {
	name, labels string
	value        float64
}

func (m metricSet) sum(name string) float64 {
	var t float64
	for _, s := range m {
		if s.name == name {
			t += s.value
		}
	}
	return t
}

// scrape reads the Prometheus text format at url.
func scrape(url string) (metricSet, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parse(resp.Body)
}

// parse reads sample lines of the text format: NAME{LABELS} VALUE.
func parse(r io.Reader) (metricSet, error) {
	var m metricSet
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			return nil, fmt.Errorf("metrics line %q", line)
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		name, labels := line[:sp], ""
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name, labels = name[:i], name[i:]
		}
		m = append(m, struct {
			name, labels string
			value        float64
		}{name, labels, v})
	}
	return m, sc.Err()
}

// p99s estimates the 99th percentile of the command latency of each class
// from the cumulative buckets of every logical unit, as the upper bound of
// the bucket that holds it.
func p99s(m metricSet) string {
	type bucket struct{ le, count float64 }
	byClass := map[string]map[float64]float64{}
	for _, s := range m {
		if s.name != "odxtgt_scsi_command_duration_seconds_bucket" {
			continue
		}
		class, le := label(s.labels, "class"), label(s.labels, "le")
		bound, err := strconv.ParseFloat(le, 64)
		if err != nil {
			bound = math.Inf(1) // "+Inf"
		}
		if byClass[class] == nil {
			byClass[class] = map[float64]float64{}
		}
		byClass[class][bound] += s.value
	}
	var out []string
	for _, class := range slices.Sorted(maps.Keys(byClass)) {
		var bs []bucket
		for le, n := range byClass[class] {
			bs = append(bs, bucket{le, n})
		}
		slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
		total := bs[len(bs)-1].count
		if total == 0 {
			continue
		}
		for _, b := range bs {
			if b.count >= 0.99*total {
				out = append(out, fmt.Sprintf("%s ≤ %s (%.0f commands)", class, fmtSeconds(b.le), total))
				break
			}
		}
	}
	return strings.Join(out, ", ")
}

func label(labels, key string) string {
	i := strings.Index(labels, key+`="`)
	if i < 0 {
		return ""
	}
	rest := labels[i+len(key)+2:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}

func fmtSeconds(s float64) string {
	if math.IsInf(s, 1) {
		return "+Inf"
	}
	return time.Duration(s * float64(time.Second)).String()
}
