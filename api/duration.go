package api

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a grant lifetime as GrantRequest.Expires carries it:
// a Go duration ("72h", "90m"), or a whole number of days, alone or
// followed by one ("3d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	days, rest := int64(0), s
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseInt(s[:i], 10, 32)
		if err != nil || n < 0 {
			return 0, errors.New("duration " + strconv.Quote(s) + ": want e.g. 72h, 90m or 3d")
		}
		days, rest = n, s[i+1:]
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return 0, errors.New("duration " + strconv.Quote(s) + ": want e.g. 72h, 90m or 3d")
		}
	}
	return time.Duration(days)*24*time.Hour + d, nil
}

// FormatDuration shows a duration the way people write grant lifetimes:
// "30d" rather than "720h0m0s", "36h", "90m".
func FormatDuration(d time.Duration) string {
	switch {
	case d > 0 && d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	case d > 0 && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d > 0 && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}
