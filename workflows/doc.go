// Package workflows holds PremiScale's Temporal workflows: GroupWorkflow keeps an autoscaling
// group at its desired size, InstanceWorkflow owns one VM from launch to retirement. Their
// arguments, signal, update and query names and status types live in internal/spec, which the
// CLI, the worker and the check-in server share. Workflow code here must stay deterministic:
// workflow.Now, timers and selectors only, no map iteration that affects commands, no I/O
// (workflowcheck and the replay tests guard this).
package workflows
