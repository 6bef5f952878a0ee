package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	// Embedded zone data, so a schedule's TimeZone loads (and means the same) on hosts and
	// containers without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// cronParser accepts the standard 5 fields and descriptors (@daily, @hourly, ...).
func cronParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// parseCron parses expr in the zone tz ("" = UTC).
func parseCron(expr, tz string) (*cron.SpecSchedule, error) {
	s, err := parseCronExpr(expr)
	if err != nil {
		return nil, err
	}
	loc, err := loadZone(tz)
	if err != nil {
		return nil, err
	}
	s.Location = loc
	return s, nil
}

// loadZone loads a schedule's time zone ("" = UTC). It rejects the host's Local zone, which
// would make the fire times depend on the host.
func loadZone(tz string) (*time.Location, error) {
	if tz == "Local" {
		return nil, errors.New(`time zone "Local" depends on the host: name the zone`)
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("load time zone %q: %w", tz, err)
	}
	return loc, nil
}

// parseCronExpr parses a cron expression, read in UTC until the caller sets its Location. It
// rejects what would make the fire times depend on anything but Now: TZ= prefixes (TimeZone
// says it; robfig/cron v3.0.1 also panics on some malformed ones) and @every (its "fire times"
// are relative to whenever you ask).
func parseCronExpr(expr string) (sched *cron.SpecSchedule, err error) {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, errors.New("cron must not carry a TZ= prefix: set timeZone instead")
	}
	if strings.HasPrefix(expr, "@every") {
		return nil, errors.New("@every is not anchored to the clock: use a cron expression")
	}
	defer func() {
		if p := recover(); p != nil {
			sched, err = nil, fmt.Errorf("parse cron %q: %v", expr, p)
		}
	}()
	s, err := cronParser().Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("parse cron %q: %w", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("parse cron %q: not a calendar schedule", expr)
	}
	return spec, nil
}

// activeSince returns the fire time that makes the schedule active at now: the latest fire f
// with now − d < f ≤ now. Next returns the first fire strictly after its argument, so asking
// from now − d finds it.
func activeSince(s *cron.SpecSchedule, d time.Duration, now time.Time) (time.Time, bool) {
	if d <= 0 {
		return time.Time{}, false
	}
	f := s.Next(now.Add(-d))
	if f.IsZero() || f.After(now) {
		return time.Time{}, false
	}
	return f, true
}

// bounds are the limits in force at one evaluation.
type bounds struct {
	min, max, floor int
	schedule        string
	// desired is the active schedule's Desired, or -1.
	desired int
	notes   []string
}

// resolveBounds applies the active schedule, if any, to the spec's bounds. When several are
// active, the one latest in the list wins outright: mixing fields from several schedules would
// give bounds nobody wrote down.
func resolveBounds(spec Spec, now time.Time) bounds {
	b := bounds{min: spec.Min, max: spec.Max, desired: -1}
	var active *Schedule
	var until time.Time
	for i := range spec.Schedules {
		s := &spec.Schedules[i]
		cs, err := parseCron(s.Cron, s.TimeZone)
		if err != nil {
			// Validate rejects this; say so rather than fail the whole evaluation.
			b.notes = append(b.notes, fmt.Sprintf("schedule %s ignored: %v", s.Name, err))
			continue
		}
		if f, ok := activeSince(cs, s.Duration, now); ok {
			active, until = s, f.Add(s.Duration)
		}
	}
	if active != nil {
		b.schedule = active.Name
		if active.Min != nil {
			b.min = *active.Min
		}
		if active.Max != nil {
			b.max = *active.Max
		}
		if active.Desired != nil {
			b.desired = *active.Desired
		}
		b.notes = append(b.notes, fmt.Sprintf("schedule %s active until %s: %s", active.Name,
			until.UTC().Format(time.RFC3339), describeOverride(active)))
	}
	if b.min < 0 {
		b.min = 0
	}
	if b.min > b.max {
		// Validate rejects this; never create more than a stated maximum.
		b.notes = append(b.notes, fmt.Sprintf("min %d above max %d: using %d", b.min, b.max, b.max))
		b.min = b.max
	}
	b.floor = b.min
	if b.desired > b.floor {
		b.floor = min(b.desired, b.max)
	}
	return b
}

func describeOverride(s *Schedule) string {
	var parts []string
	if s.Min != nil {
		parts = append(parts, fmt.Sprintf("min %d", *s.Min))
	}
	if s.Max != nil {
		parts = append(parts, fmt.Sprintf("max %d", *s.Max))
	}
	if s.Desired != nil {
		parts = append(parts, fmt.Sprintf("desired ≥ %d", *s.Desired))
	}
	if len(parts) == 0 {
		return "no overrides"
	}
	return strings.Join(parts, ", ")
}
