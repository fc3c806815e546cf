//! [`reconcile`]: one queued event → store actions and effects.

use super::{Action, Effect, ReconcileEvent, ReconcileState, Reconciled};
use crate::ids::{AgentId, BeadId, MAX_ID_LEN};
use crate::policy::DispatchRetry;
use crate::status::{AgentStatus, BeadKind, BeadStatus};
use crate::store::{AgentRecord, BeadRecord};

/// Decides what one event changes, given the state loaded for this tick, at `now_ms`
/// (ms since the Unix epoch). Pure: the caller writes [`Reconciled::actions`] in one
/// transaction with the event's processed mark, then runs [`Reconciled::effects`].
///
/// "Released" below means: the bead gets one more failed attempt
/// (`dispatch_attempts + 1`, `last_dispatch_ms = now_ms`, `last_error` = why), loses its
/// assignee, and goes back to `open` — or to `failed`, keeping `last_error`, once the
/// attempts reach [`DispatchRetry::DEFAULT`]'s `max_attempts` (5; ARCHITECTURE.md,
/// *Lifecycle timings*); [`sweep`](super::sweep) re-dispatches an open one after the 30 s
/// cooldown. A bead is released only while it is still dispatched to the event's agent
/// (`open`/`in_progress`, assigned to it; the module's *dispatch contract*), so a
/// duplicate event counts once. The agent is released too — unhooked (when hooked to the
/// event's bead) and `idle` — unless it is hooked to another bead by now.
///
/// | event | bead or agent missing | rule |
/// |---|---|---|
/// | `DispatchFailed`, `maybe_accepted` | terminal ([`Reconciled::missing`]; Kilo Gastown PR #3047) | nothing: the agent stays `working`; the stale-heartbeat rule of the sweep cleans up (Kilo Gastown PR #3151) |
/// | `DispatchFailed`, not accepted | terminal | bead and agent released, with the event's error |
/// | `WorkChecked`, issue, `commits > 0` | terminal | bead `in_review` with `branch` and `head`; a `merge_request` bead `<bead>-mr` opened for it (title `Review <title>`, same rig and branch, `source_bead` = the bead) and an [`Effect::Dispatch`] of it; agent released |
/// | `WorkChecked`, issue, `commits == 0` | terminal | as a failed dispatch, error `no commits on <branch>` |
/// | `WorkChecked`, merge request, `commits == 0` | terminal | the refinery merged the branch: the merge request and its source bead `closed`; agent released |
/// | `WorkChecked`, merge request, `commits > 0` | terminal | as a failed dispatch, error `<n> commits on <branch> not merged` |
/// | `AgentExited` | terminal | every bead dispatched to it released; hook cleared, `idle`, unregistered |
///
/// A merge request bead already live for the same issue (a second round of work) is
/// reused rather than duplicated: it gets the new branch and head and, unless a refinery
/// is on it, goes back to `open` with a fresh retry budget. When `<bead>-mr` is taken by
/// an unrelated bead, `<bead>-mr-2`, `-mr-3`, … is used (the bead id shortened to keep
/// within [`MAX_ID_LEN`]).
pub fn reconcile(state: &ReconcileState, event: &ReconcileEvent, now_ms: i64) -> Reconciled {
    match event {
        ReconcileEvent::DispatchFailed {
            bead,
            agent,
            error,
            maybe_accepted,
        } => match lookup(state, bead, agent) {
            Err(missing) => missing,
            Ok(_) if *maybe_accepted => Reconciled::default(),
            Ok((bead, agent)) => dispatch_failed(bead, agent, error.clone(), now_ms),
        },
        ReconcileEvent::WorkChecked {
            bead,
            agent,
            branch,
            commits,
            head,
        } => match lookup(state, bead, agent) {
            Err(missing) => missing,
            Ok((bead, agent)) => {
                let check = Check {
                    branch,
                    commits: *commits,
                    head,
                };
                match bead.kind {
                    BeadKind::Issue => issue_checked(state, bead, agent, &check, now_ms),
                    BeadKind::MergeRequest => review_checked(state, bead, agent, &check, now_ms),
                }
            }
        },
        ReconcileEvent::AgentExited { agent } => match state.agents.get(agent) {
            None => missing(format!("agent {agent} does not exist")),
            Some(agent) => agent_exited(state, agent, now_ms),
        },
    }
}

/// A `WorkChecked` event's findings.
struct Check<'a> {
    branch: &'a str,
    commits: u32,
    head: &'a Option<String>,
}

fn missing(reason: String) -> Reconciled {
    Reconciled {
        missing: Some(reason),
        ..Reconciled::default()
    }
}

/// The event's bead and agent, or the terminal [`Reconciled`] naming the first missing.
fn lookup<'s>(
    state: &'s ReconcileState,
    bead: &BeadId,
    agent: &AgentId,
) -> Result<(&'s BeadRecord, &'s AgentRecord), Reconciled> {
    let b = state
        .beads
        .get(bead)
        .ok_or_else(|| missing(format!("bead {bead} does not exist")))?;
    let a = state
        .agents
        .get(agent)
        .ok_or_else(|| missing(format!("agent {agent} does not exist")))?;
    Ok((b, a))
}

/// True while `bead` is dispatched to `agent`: `open` or `in_progress`, assigned to it.
pub(super) fn dispatched_to(bead: &BeadRecord, agent: &AgentId) -> bool {
    matches!(bead.status, BeadStatus::Open | BeadStatus::InProgress)
        && bead.assignee.as_ref() == Some(agent)
}

/// `bead` after one more failed dispatch at `now_ms`: attempts + 1, the time and the
/// error recorded, unassigned, `open` — or `failed` once the attempts reach
/// [`DispatchRetry::DEFAULT`]'s `max_attempts`.
pub(super) fn released(bead: &BeadRecord, error: String, now_ms: i64) -> BeadRecord {
    let attempts = bead.dispatch_attempts.saturating_add(1);
    let status = if attempts >= DispatchRetry::DEFAULT.max_attempts {
        BeadStatus::Failed
    } else {
        BeadStatus::Open
    };
    BeadRecord {
        status,
        assignee: None,
        dispatch_attempts: attempts,
        last_dispatch_ms: Some(now_ms),
        last_error: Some(error),
        updated_ms: now_ms,
        ..bead.clone()
    }
}

/// Unhooks `agent` from `bead` and makes it `idle`, unless it is hooked to another bead
/// by now; only the changes are pushed.
fn release_agent(agent: &AgentRecord, bead: &BeadId, actions: &mut Vec<Action>) {
    match agent.hook.as_deref() {
        Some(hook) if hook != bead.as_str() => return,
        Some(_) => actions.push(Action::SetHook {
            agent: agent.id.clone(),
            hook: None,
        }),
        None => {}
    }
    if agent.status != AgentStatus::Idle {
        actions.push(Action::SetAgentStatus {
            agent: agent.id.clone(),
            status: AgentStatus::Idle,
        });
    }
}

fn dispatch_failed(
    bead: &BeadRecord,
    agent: &AgentRecord,
    error: String,
    now_ms: i64,
) -> Reconciled {
    let mut actions = Vec::new();
    if dispatched_to(bead, &agent.id) {
        actions.push(Action::PutBead(released(bead, error, now_ms)));
    }
    release_agent(agent, &bead.id, &mut actions);
    Reconciled {
        actions,
        ..Reconciled::default()
    }
}

fn issue_checked(
    state: &ReconcileState,
    bead: &BeadRecord,
    agent: &AgentRecord,
    check: &Check<'_>,
    now_ms: i64,
) -> Reconciled {
    if check.commits == 0 {
        let error = format!("no commits on {}", check.branch);
        return dispatch_failed(bead, agent, error, now_ms);
    }
    let mut actions = Vec::new();
    let mut effects = Vec::new();
    if dispatched_to(bead, &agent.id) {
        let done = BeadRecord {
            status: BeadStatus::InReview,
            branch: Some(check.branch.to_owned()),
            head: check.head.clone(),
            updated_ms: now_ms,
            ..bead.clone()
        };
        let review = merge_request(state, &done, now_ms);
        if review.status == BeadStatus::Open {
            effects.push(Effect::Dispatch {
                bead: review.id.clone(),
                agent: None,
            });
        }
        actions.push(Action::PutBead(done));
        actions.push(Action::PutBead(review));
    }
    release_agent(agent, &bead.id, &mut actions);
    Reconciled {
        actions,
        effects,
        missing: None,
    }
}

/// The merge request bead for `issue` (in review, with its branch and head): the live one
/// already opened for it, refreshed, or a new one.
fn merge_request(state: &ReconcileState, issue: &BeadRecord, now_ms: i64) -> BeadRecord {
    let existing = state.beads.values().find(|b| {
        b.kind == BeadKind::MergeRequest && b.source_bead.as_ref() == Some(&issue.id) && b.is_live()
    });
    if let Some(mr) = existing {
        let mut mr = BeadRecord {
            branch: issue.branch.clone(),
            head: issue.head.clone(),
            updated_ms: now_ms,
            ..mr.clone()
        };
        // A refinery on it reviews the new head itself; otherwise it is queued afresh.
        if mr.status != BeadStatus::InProgress {
            mr.status = BeadStatus::Open;
            mr.assignee = None;
            mr.dispatch_attempts = 0;
            mr.last_dispatch_ms = None;
            mr.last_error = None;
        }
        return mr;
    }
    BeadRecord {
        kind: BeadKind::MergeRequest,
        rig: issue.rig.clone(),
        branch: issue.branch.clone(),
        head: issue.head.clone(),
        source_bead: Some(issue.id.clone()),
        ..BeadRecord::issue(
            merge_request_id(state, &issue.id),
            &format!("Review {}", issue.title),
            &format!(
                "Review and merge branch {} of bead {}.",
                issue.branch.as_deref().unwrap_or(""),
                issue.id
            ),
            now_ms,
        )
    }
}

/// `<bead>-mr`, or `<bead>-mr-<n>` (n = 2, 3, …) when taken, the bead id shortened so the
/// whole stays within [`MAX_ID_LEN`].
fn merge_request_id(state: &ReconcileState, bead: &BeadId) -> BeadId {
    // Each n gives a distinct candidate and the state holds finitely many beads, so the
    // search ends; a candidate is a valid id's non-empty prefix plus `-mr…`, so it
    // validates.
    (1u32..)
        .find_map(|n| {
            let suffix = if n == 1 {
                "-mr".to_owned()
            } else {
                format!("-mr-{n}")
            };
            let base = bead.as_str();
            let keep = base.len().min(MAX_ID_LEN - suffix.len());
            let candidate = BeadId::new(format!("{}{suffix}", &base[..keep])).ok()?;
            (!state.beads.contains_key(&candidate)).then_some(candidate)
        })
        .expect("an unused merge request id exists among more candidates than beads")
}

fn review_checked(
    state: &ReconcileState,
    review: &BeadRecord,
    agent: &AgentRecord,
    check: &Check<'_>,
    now_ms: i64,
) -> Reconciled {
    if check.commits > 0 {
        let error = format!("{} commits on {} not merged", check.commits, check.branch);
        return dispatch_failed(review, agent, error, now_ms);
    }
    let mut actions = Vec::new();
    if dispatched_to(review, &agent.id) {
        actions.push(Action::PutBead(BeadRecord {
            status: BeadStatus::Closed,
            head: check.head.clone().or_else(|| review.head.clone()),
            updated_ms: now_ms,
            ..review.clone()
        }));
        let source = review.source_bead.as_ref().and_then(|s| state.beads.get(s));
        if let Some(source) = source.filter(|s| s.is_live()) {
            actions.push(Action::PutBead(BeadRecord {
                status: BeadStatus::Closed,
                updated_ms: now_ms,
                ..source.clone()
            }));
        }
    }
    release_agent(agent, &review.id, &mut actions);
    Reconciled {
        actions,
        ..Reconciled::default()
    }
}

fn agent_exited(state: &ReconcileState, agent: &AgentRecord, now_ms: i64) -> Reconciled {
    let mut actions: Vec<Action> = state
        .beads
        .values()
        .filter(|b| dispatched_to(b, &agent.id))
        .map(|b| {
            let error = format!("agent {} exited before finishing it", agent.id);
            Action::PutBead(released(b, error, now_ms))
        })
        .collect();
    if agent.hook.is_some() {
        actions.push(Action::SetHook {
            agent: agent.id.clone(),
            hook: None,
        });
    }
    if agent.status != AgentStatus::Idle {
        actions.push(Action::SetAgentStatus {
            agent: agent.id.clone(),
            status: AgentStatus::Idle,
        });
    }
    actions.push(Action::Unregister {
        agent: agent.id.clone(),
    });
    Reconciled {
        actions,
        ..Reconciled::default()
    }
}
