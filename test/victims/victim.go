// Go victim for the timeskew tests. Built with CGO_ENABLED=0, so the Go runtime
// calls the vDSO itself (no glibc): a different caller of the patched code than
// the C victim. Protocol as in victim.c, reduced to: now, exit <code>, EOF.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	// Go exposes its monotonic clock only as differences between time.Time
	// values, so `monotonic` is relative to this reading, not CLOCK_MONOTONIC.
	start := time.Now()
	out := bufio.NewWriter(os.Stdout)
	reply := func(format string, args ...interface{}) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	reply("ready %d", os.Getpid())

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		line := strings.TrimSpace(in.Text())
		switch {
		case line == "now":
			reply("realtime=%d monotonic=%d", time.Now().UnixNano(), time.Since(start).Nanoseconds())
		case strings.HasPrefix(line, "exit "):
			code, err := strconv.Atoi(strings.TrimSpace(line[5:]))
			if err != nil {
				reply("error bad exit code: %s", line)
				continue
			}
			os.Exit(code)
		default:
			reply("error unknown command: %s", line)
		}
	}
	os.Exit(0)
}
