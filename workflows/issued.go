package workflows

import "go.temporal.io/sdk/workflow"

// issuedCommands are the child starts and signals a lean group has issued and not waited for
// yet. Issued together and then waited for, the launches and retirements of one evaluation go
// to the server in one workflow task instead of one task each.
type issuedCommands struct {
	list []issuedCommand
	// bytes estimates what their inputs weigh.
	bytes int
}

type issuedCommand struct {
	f      workflow.Future
	failed func(error)
}

// maxIssuedBytes bounds what the commands of one workflow task carry (a child's input holds
// its launch spec and cloud-init): the server refuses a task completion of a few MiB.
const maxIssuedBytes = 1 << 20

// issue takes a command's future: a lean run waits for it with the others at awaitIssued,
// other runs at once, as they always did. failed is given the command's error. It says
// whether the command is issued: false only when a run that waits at once saw it fail.
func (g *group) issue(ctx workflow.Context, f workflow.Future, size int, failed func(error)) bool {
	if !g.lean {
		if err := f.Get(ctx, nil); err != nil {
			failed(err)
			return false
		}
		return true
	}
	if g.issued.bytes+size > maxIssuedBytes {
		g.awaitIssued(ctx)
	}
	g.issued.list = append(g.issued.list, issuedCommand{f: f, failed: failed})
	g.issued.bytes += size
	return true
}

// awaitIssued waits for every issued command, in the order issued.
func (g *group) awaitIssued(ctx workflow.Context) {
	list := g.issued.list
	g.issued = issuedCommands{}
	for _, c := range list {
		if err := c.f.Get(ctx, nil); err != nil {
			c.failed(err)
		}
	}
}
