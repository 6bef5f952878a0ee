// Package platform links a PremiScale installation to the PremiScale platform: it registers
// the installation with the platform's token, holds a websocket to it, sends what the agents
// do (group status, the decision log, instance lifecycle, host capacity) and applies the
// platform's commands (the CLI's group operations). docs/platform-protocol.md is the protocol.
//
// # One link per installation
//
// An installation (the agents sharing one MySQL database and Temporal namespace, one per
// hypervisor host) is one agent to the platform: one registration, kept in MySQL, and one
// websocket. Every agent runs a Link; the one that holds a MySQL advisory lock
// ("premiscale.platform-link.<database>") owns the websocket, the others stand by and take
// the lock over within ElectionInterval when its holder stops or loses its MySQL session. The
// holder checks it still holds the lock every ElectionInterval and gives the link up when it
// does not.
//
// Exactly once, whichever agent is up:
//   - Events go through the MySQL outbox (platform_outbox), shared by every agent. Each has a
//     stable id; it is deleted only when the platform acknowledges that id, so a new holder,
//     or a reconnect, sends again whatever was not acknowledged: at least once on the wire,
//     never twice in the outbox, and the platform drops ids it has seen.
//   - A command that changes something is claimed under its id in platform_commands before it
//     is applied, and its result is stored there and put in the outbox in one transaction. The
//     same id again, on any agent, gets the stored result ("duplicate": true) and is not
//     applied again. A command whose link stopped while applying it is taken over by the next
//     link when the platform sends it again (every operation sets a state, so applying it to
//     the end then is safe).
//
// # Where events come from
//
// Decisions and instance state changes: internal/state writes them to the outbox in the
// same transaction as the decision-log row or the instance update, so none is lost between
// the two and none is written twice (ids "decision/<key>" and "instance/<name>/<state>").
// Group status: the link holder polls groupctl every StatusInterval and puts a snapshot in the
// outbox when a group's status changed. Host capacity: every agent, for the hosts it serves.
// Snapshots coalesce (one pending per group or host). The outbox fills only while the
// installation is registered.
//
// # The outbox's limit
//
// At most MaxOutboxEvents events wait (snapshots aside); past that the oldest are dropped,
// counted in MySQL (platform_counters.outbox_dropped), logged, and reported to the platform
// in an "outbox.overflow" event and in every hello.
package platform
