package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

var databaseActivityOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10,
	},
}

// evaluate reads the checks, asks the policy engine for a size, and acts on it unless the
// group is paused or a dry run. Every evaluation that changes or wants to change the size is
// written to the decision log.
func (g *group) evaluate(ctx workflow.Context) {
	now := workflow.Now(ctx)
	var readings map[string]policy.Reading
	if g.fleet {
		// One observation per evaluation, before anything is launched: the hosts for placement
		// and for lost instances, the checks for the policy.
		readings = g.observe(ctx, !g.st.Deleting && !g.st.DesiredSet)
	}
	owedLimit := ""
	if g.intent {
		g.expireGoal(now)
		g.capOwed()
		owedLimit = g.payOwed(ctx)
	} else {
		for ; g.st.ReplacementsOwed > 0; g.st.ReplacementsOwed-- {
			if !g.st.Deleting {
				g.launchUpTo(ctx, 1, "replacement", false)
			}
		}
	}
	// A roll's new instances above the group's size are not part of it until old ones retire.
	current := g.live() - g.rollSurplus()
	// The size the group has: owed replacements count as instances about to launch.
	size := current + g.st.ReplacementsOwed
	var ev policy.Evaluation
	outcome := spec.OutcomeActed
	switch {
	case g.st.Deleting:
		ev = policy.Evaluation{Action: policy.Hold, From: current, To: 0, Reason: "group is being deleted"}
		if current > 0 {
			ev.Action = policy.ScaleIn
			ev.Reason = fmt.Sprintf("group is being deleted; retiring %d", current)
		}
		outcome = spec.OutcomeDeleting
	case g.st.DesiredSet:
		ev = policy.Evaluation{Action: policy.Hold, From: size, To: g.st.Desired, Recommended: g.st.Desired, Winner: "operator",
			Reason: fmt.Sprintf("operator set the desired size to %d", g.st.Desired)}
		switch {
		case g.st.Desired > size:
			ev.Action = policy.ScaleOut
		case g.st.Desired < size:
			ev.Action = policy.ScaleIn
		}
	default:
		if !g.fleet {
			readings = g.readChecks(ctx)
		}
		var next policy.State
		ev, next = policy.Evaluate(g.eff.Policy, g.st.Policy, policy.Inputs{Now: now, Current: size, Readings: readings})
		switch {
		case g.eff.DryRun:
			outcome = spec.OutcomeDryRun
		case g.st.Paused:
			outcome = spec.OutcomePaused
		default:
			g.st.Policy = next
		}
	}
	if ev.Action == policy.Hold && outcome == spec.OutcomeActed {
		outcome = spec.OutcomeHeld
	}
	g.st.Evaluations++

	reason := ev.Reason
	switch {
	case (outcome == spec.OutcomeActed || outcome == spec.OutcomeDeleting) && g.intent:
		reason += g.actOwing(ctx, ev.To)
		if g.fleet {
			reason += g.rollStep(ctx)
		}
	case outcome == spec.OutcomeActed || outcome == spec.OutcomeDeleting:
		reason += g.act(ctx, ev)
	case outcome == spec.OutcomeHeld && g.fleet:
		reason += g.rollStep(ctx)
	case outcome != spec.OutcomeHeld:
		reason = fmt.Sprintf("%s: would %s %d → %d, not acting; %s", outcome, ev.Action, ev.From, ev.To, ev.Reason)
	}
	if g.pool {
		reason += g.poolStep(ctx, outcome)
	}
	// Launches and retirements go out together; a child that could not start is failed here.
	g.awaitIssued(ctx)
	if owed := g.st.ReplacementsOwed; owed > 0 {
		reason += fmt.Sprintf("; %d replacements owed", owed)
		if outcome != spec.OutcomeActed && owedLimit != "" {
			reason += ": " + owedLimit
		}
	}
	// An operator's size stays the goal until the group reaches it (launch limits may take
	// several evaluations); only then does the policy take over again.
	if g.st.DesiredSet && g.live() == g.st.Desired && g.st.ReplacementsOwed == 0 {
		g.st.DesiredSet = false
	}
	notes := g.takeNotes()
	if len(notes) > 0 {
		reason = strings.Join(notes, "; ") + "; " + reason
	}
	g.st.LastDecision = &spec.DecisionRecord{
		At: now, Action: string(ev.Action), From: ev.From, To: ev.To, Recommended: ev.Recommended,
		Winner: ev.Winner, Reason: reason, Outcome: outcome, Checks: ev.Checks,
	}
	logged := g.logDecision(ctx, g.st.LastDecision, ev, len(notes) > 0 || g.rollActed || g.poolActed)
	// A line per evaluation of every group would drown the worker's log: what the decision
	// log leaves out (a plain hold, a repeat) is a debug line.
	logf := g.logger.Debug
	if logged || !g.lean {
		logf = g.logger.Info
	}
	logf("evaluated", "group", g.eff.Name, "action", ev.Action, "from", ev.From, "to", ev.To, "outcome", outcome, "reason", reason)
	g.metrics(ctx).evaluated(g)
	g.rollActed, g.poolActed = false, false
	g.publish(ctx)
}

// act launches or retires instances for ev and returns what limited it, if anything.
func (g *group) act(ctx workflow.Context, ev policy.Evaluation) string {
	current := g.live()
	switch {
	case ev.To > current:
		launched, limit := g.launchUpTo(ctx, ev.To-current, "", false)
		if launched < ev.To-current {
			return fmt.Sprintf("; launched %d of %d: %s", launched, ev.To-current, limit)
		}
	case ev.To < current:
		retired := g.retire(ctx, current-ev.To, g.st.Deleting)
		if retired < current-ev.To {
			return fmt.Sprintf("; retired %d of %d: the others are protected from scale-in", retired, current-ev.To)
		}
	}
	return ""
}

// readChecks reads every check's metric (nothing for fixed checks), at every size: a group at
// 0 has no cpu samples, but a query check may well have data, and its fallback must not apply
// while it does. Instances still booting count as capacity but not as data; a reading from
// fewer instances than are running is partial.
func (g *group) readChecks(ctx workflow.Context) map[string]policy.Reading {
	var queries []policy.Check
	for _, c := range g.eff.Policy.Checks {
		if !c.ReadsData() || c.Metric == "" {
			continue
		}
		queries = append(queries, c)
	}
	if len(queries) == 0 {
		return nil
	}
	// Runs started before version 1 read no check at size 0; their histories must replay.
	if g.live() == 0 && workflow.GetVersion(ctx, changeReadChecksAtZero, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var exclude []string
	running := 0
	for _, ref := range g.st.Instances {
		if ref.State == spec.StateRunning {
			running++
		} else {
			exclude = append(exclude, ref.Name)
		}
	}
	q := activities.ReadChecksParams{Group: g.eff.Name, Checks: queries, Exclude: exclude, Running: running}
	mctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var a *activities.Activities
	var readings map[string]policy.Reading
	if err := workflow.ExecuteActivity(mctx, a.ReadChecks, q).Get(ctx, &readings); err != nil {
		// Every check then has no data and follows its onError rule.
		g.logger.Warn("reading checks failed", "group", g.eff.Name, "error", err)
		readings = map[string]policy.Reading{}
		for _, c := range queries {
			readings[c.Name] = policy.Reading{Err: err.Error()}
		}
	}
	return readings
}

func checkValues(checks []policy.CheckResult) map[string]float64 {
	values := map[string]float64{}
	for _, c := range checks {
		if c.HasData {
			values[c.Name] = c.Value
		}
	}
	return values
}

// publish shows the latest decision in the Temporal UI: search attributes, memo and the
// workflow's current details.
func (g *group) publish(ctx workflow.Context) {
	s := g.status()
	last, outcome, reason := "", "", ""
	if d := s.LastDecision; d != nil {
		last, outcome, reason = d.Action, d.Outcome, d.Reason
	}
	attrs := []temporal.SearchAttributeUpdate{
		spec.AttrGroup.ValueSet(s.Group),
		spec.AttrDesired.ValueSet(int64(s.Desired)),
		spec.AttrCurrent.ValueSet(int64(s.Current)),
		spec.AttrLastAction.ValueSet(last),
	}
	memo := map[string]any{"lastDecision": reason, "outcome": outcome}
	if g.lean {
		// Each upsert is a history event: only what changed is written. The memo says what
		// the decision log says, so it changes when the decision or its reason does, not
		// with every new measurement (the current details below show those).
		attrs = changedAttributes(workflow.GetTypedSearchAttributes(ctx), s, last)
		sig := ""
		if s.LastDecision != nil {
			sig = decisionSignature(s.LastDecision)
		}
		if sig == g.st.MemoSignature {
			memo = nil
		}
		g.st.MemoSignature = sig
	}
	if len(attrs) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, attrs...); err != nil {
			g.logger.Warn("could not upsert search attributes", "error", err)
		}
	}
	if memo != nil {
		if err := workflow.UpsertMemo(ctx, memo); err != nil {
			g.logger.Warn("could not upsert memo", "error", err)
		}
	}
	// fmt.Fprintf would be I/O to workflowcheck; formatting into a string is not.
	var b strings.Builder
	b.WriteString(fmt.Sprintf("**%s**: %d instances, desired %d (min %d, max %d)", s.Group, s.Current, s.Desired, s.Min, s.Max))
	if s.Paused {
		b.WriteString(" — **paused**")
	}
	if s.DryRun {
		b.WriteString(" — **dry run**")
	}
	if s.LastDecision != nil {
		b.WriteString(fmt.Sprintf("\n\nLast decision at %s: %s (%s)", s.LastDecision.At.Format(time.RFC3339), s.LastDecision.Outcome, s.LastDecision.Reason))
	}
	if s.ReplacementsOwed > 0 {
		b.WriteString(fmt.Sprintf("\n\nreplacements owed: %d", s.ReplacementsOwed))
	}
	if s.Goal != nil {
		b.WriteString(fmt.Sprintf("\n\noperator's goal: %d", s.Goal.Size))
	}
	if s.Sources != (spec.Sources{Min: spec.SourceConfig, Max: spec.SourceConfig, Spec: spec.SourceConfig}) {
		b.WriteString(fmt.Sprintf("\n\noperator overrides: min from %s, max from %s, spec from %s", s.Sources.Min, s.Sources.Max, s.Sources.Spec))
	}
	if s.Launches.LastError != "" && s.Launches.ConsecutiveFailures > 0 {
		b.WriteString(fmt.Sprintf("\n\nlaunch failing: %s", s.Launches.LastError))
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

// changedAttributes are the group's search attributes whose values differ from those the
// workflow has now.
func changedAttributes(have temporal.SearchAttributes, s spec.GroupStatus, lastAction string) []temporal.SearchAttributeUpdate {
	var out []temporal.SearchAttributeUpdate
	if v, ok := have.GetKeyword(spec.AttrGroup); !ok || v != s.Group {
		out = append(out, spec.AttrGroup.ValueSet(s.Group))
	}
	if v, ok := have.GetInt64(spec.AttrDesired); !ok || v != int64(s.Desired) {
		out = append(out, spec.AttrDesired.ValueSet(int64(s.Desired)))
	}
	if v, ok := have.GetInt64(spec.AttrCurrent); !ok || v != int64(s.Current) {
		out = append(out, spec.AttrCurrent.ValueSet(int64(s.Current)))
	}
	if v, ok := have.GetKeyword(spec.AttrLastAction); !ok || v != lastAction {
		out = append(out, spec.AttrLastAction.ValueSet(lastAction))
	}
	return out
}
