package workflows

// Change IDs for workflow.GetVersion. A workflow change that alters the commands a history
// holds (an activity more or less, a different order) is made behind one of these, so runs
// recorded before it still replay; see the README's "Upgrading" notes.
const (
	// changeReadChecksAtZero: a group at size 0 reads its checks too (before: it read none, so
	// a query check's fallback applied at creation even with fresh data).
	changeReadChecksAtZero = "read-checks-at-size-0"
	// changeDecisionLogRepeats: the decision log writes a row when the decision or its reason
	// changes (holds on missing data included) and counts repeats (before: a row for every
	// evaluation that wanted a change, none for a hold on missing data).
	changeDecisionLogRepeats = "decision-log-repeats"
	// changeOperatorIntent: the config's spec merges with the operator's overrides instead of
	// replacing the spec; a pending desired size is clamped or dropped when the bounds move and
	// expires; failed instances are owed replacements until launched (before: bounds written
	// into the spec, a goal chased forever, a replacement the limits refused forgotten).
	changeOperatorIntent = "operator-intent"
	// changeFleet: an evaluation observes its checks and its hosts in one activity (Observe);
	// a launch goes to an up host with room (before: the host with the fewest of the group's
	// instances); instances on a host down longer than hostGracePeriod are lost and replaced;
	// host activities have a schedule-to-start bound, and a retirement on a down host waits
	// for it without blocking the group; a launch refused for lack of room is tried again
	// elsewhere without counting as a failed launch.
	changeFleet = "fleet"
	// changeWarmPool: a group keeps its warm pool (warmPool in the spec): launches take pool
	// members first, every evaluation trims and refills the pool, a scale-in may return
	// instances to it. InstanceWorkflow needs no change ID of its own: what is new there runs
	// only for members launched into a pool (InstanceParams.Pool) or on the take and park
	// signals, which only a group with a pool sends.
	changeWarmPool = "warm-pool"
	// changeLeanHistory: an evaluation observes in a local activity, and not at all when it has
	// nothing to read (no metric check, no instance a host could lose); search attributes and
	// the memo are upserted only when they change; the child starts and signals of one
	// evaluation (launches, retirements, lost instances) are issued together and then waited
	// for together (before: an Observe activity every evaluation, every attribute and the memo
	// upserted every evaluation, a workflow task per launch and per retirement).
	changeLeanHistory = "lean-history"
	// changeLeanInstance: an instance records its states and reads its last heartbeat in local
	// activities, and sets its group and host search attributes when its start did not
	// (before: a regular activity each, no attributes).
	changeLeanInstance = "lean-instance"
	// changeClientStarts: a lean group starts its instance workflows through the client, all of
	// an evaluation's in one StartWorkflows activity, instead of as child workflows, and sends
	// its signals to instances (retire, lost, take, park) through the client, an evaluation's
	// in one SignalWorkflows local activity, instead of as external-signal commands: each child
	// start, its started event and each signal command is work the server does on the group's
	// history one after another. The instances it starts carry InstanceParams.Rules, which
	// stands in for their own GetVersion calls and has them report through the client, batched.
	// Workflow tests keep this at DefaultVersion (see newEnv): the test environment cannot
	// start a workflow that is not a child.
	changeClientStarts = "client-starts"
)
