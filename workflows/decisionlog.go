package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/premiscale/premiscale/activities"
	"github.com/premiscale/premiscale/internal/policy"
	"github.com/premiscale/premiscale/internal/spec"
)

// DecisionLogState is what the group remembers of its decision log: the row it wrote last and
// how many evaluations since then said the same thing.
type DecisionLogState struct {
	// Signature identifies the decision and its reason without the measured values, so a
	// hold on "no data" that lasts an hour is one row, not one per evaluation.
	Signature string `json:",omitempty"`
	// EventKey is the key of the row written last.
	EventKey string `json:",omitempty"`
	// Repeats counts the evaluations since that row that came to the same decision.
	Repeats int       `json:",omitempty"`
	LastAt  time.Time `json:",omitzero"`
}

// logDecision writes d to the decision log when it is worth a row — the size changes or an
// evaluation wants it to, a check failed, or a check's data is missing or stale, or force (the
// operator's intent changed) — and it is not the same decision for the same reason as the row
// before it. A repeat is counted on that row instead (written to MySQL when the decision
// changes), and status shows the count meanwhile. It says whether it wrote a row.
func (g *group) logDecision(ctx workflow.Context, d *spec.DecisionRecord, ev policy.Evaluation, force bool) bool {
	if workflow.GetVersion(ctx, changeDecisionLogRepeats, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		// Runs recorded before the change wrote a row per evaluation that wanted a change.
		if ev.Action != policy.Hold || ev.Recommended != ev.From || ev.Failed {
			g.recordEvent(ctx, d, g.eventKey())
			return true
		}
		return false
	}
	log := &g.st.DecisionLog
	if !force && !g.worthLogging(ev) {
		g.flushRepeats(ctx)
		*log = DecisionLogState{}
		return false
	}
	sig := decisionSignature(d)
	if sig == log.Signature {
		log.Repeats++
		log.LastAt = d.At
		d.Repeats = log.Repeats
		return false
	}
	g.flushRepeats(ctx)
	key := g.eventKey()
	g.recordEvent(ctx, d, key)
	*log = DecisionLogState{Signature: sig, EventKey: key}
	return true
}

// worthLogging says whether an evaluation belongs in the decision log at all: a plain hold on
// good data does not.
func (g *group) worthLogging(ev policy.Evaluation) bool {
	if ev.Action != policy.Hold || ev.Recommended != ev.From || ev.Failed {
		return true
	}
	for i, c := range g.eff.Policy.Checks {
		if i < len(ev.Checks) && c.ReadsData() && !ev.Checks[i].HasData {
			return true
		}
	}
	return false
}

// flushRepeats writes the repeat count of the last row before the log moves on.
func (g *group) flushRepeats(ctx workflow.Context) {
	log := g.st.DecisionLog
	if log.Repeats == 0 || log.EventKey == "" {
		return
	}
	var a *activities.Activities
	r := activities.EventRepeats{Key: log.EventKey, Repeats: log.Repeats, LastAt: log.LastAt}
	if err := workflow.ExecuteActivity(g.dbCtx(ctx), a.RecordEventRepeats, r).Get(ctx, nil); err != nil {
		g.logger.Warn("could not record repeats of a decision", "group", g.eff.Name, "error", err)
	}
}

// eventKey names the current evaluation's row; a retried activity writes it once.
func (g *group) eventKey() string {
	return fmt.Sprintf("%s/%s/%d", g.wfID, g.runID, g.st.Evaluations)
}

func (g *group) recordEvent(ctx workflow.Context, d *spec.DecisionRecord, key string) {
	var a *activities.Activities
	ev := activities.ScalingEventRecord{
		Key:   key,
		Group: g.eff.Name, At: d.At, From: d.From, To: d.To, Metrics: checkValues(d.Checks),
		Reason: d.Reason, Action: d.Action, Outcome: d.Outcome, Winner: d.Winner, Checks: d.Checks,
		WorkflowID: g.wfID, RunID: g.runID,
	}
	if err := workflow.ExecuteActivity(g.dbCtx(ctx), a.RecordScalingEvent, ev).Get(ctx, nil); err != nil {
		g.logger.Warn("could not record scaling event", "group", g.eff.Name, "error", err)
	}
}

// decisionSignature is the decision and its reason with every number taken out of the reason:
// a mean of 71.3 % one minute and 72.8 % the next is the same reason, and so is a data point
// 1m3s old and one 1m9s old.
func decisionSignature(d *spec.DecisionRecord) string {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("%s %d→%d %s %s|", d.Action, d.From, d.To, d.Outcome, d.Winner))
	inNumber := false
	for _, r := range d.Reason {
		isNum := (r >= '0' && r <= '9') || (inNumber && r == '.')
		if isNum {
			if !inNumber {
				b.WriteByte('#')
			}
		} else {
			b.WriteRune(r)
		}
		inNumber = isNum
	}
	return b.String()
}
