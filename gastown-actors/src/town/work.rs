//! The TownActor's side of the work: slinging a bead (pick a polecat, hook the bead, start
//! the polecat and prompt it in a spawned task), and what the reconciler asks of the
//! actors on each alarm tick (re-dispatch a bead, stop an idle worker) — `ARCHITECTURE.md`,
//! *Workers and the reconciler*.

use gastown_core::reconciler::{Action, Effect, ReconcileEvent};
use gastown_core::store::{AgentRecord, BeadKind, BeadRecord};
use gastown_core::{AgentId, AgentStatus, BeadStatus, RigId, Role};
use ractor::{ActorRef, RpcReplyPort};

use super::beads::Slung;
use super::{TownMsg, TownState};
use crate::agent::SessionRequest;
use crate::container::ContainerMsg;
use crate::context::AgentSpec;
use crate::error::{Error, Result};

/// Town store key of the last polecat number handed out (`polecat-<n>`).
const POLECAT_SEQ_KEY: &str = "polecat_seq";

impl TownState {
    /// A handle's sling: checks the rig and the bead, then dispatches it.
    pub(super) fn on_sling(
        &mut self,
        myself: &ActorRef<TownMsg>,
        bead: gastown_core::BeadId,
        rig: RigId,
        reply: RpcReplyPort<Result<Slung>>,
    ) {
        let result = self.check_sling(&bead, &rig).and_then(|record| {
            if self.shutting_down {
                return Err(Error::Stopped);
            }
            self.dispatch(myself, record, rig)
        });
        let _ = reply.send(result);
    }

    fn check_sling(&self, id: &gastown_core::BeadId, rig: &RigId) -> Result<BeadRecord> {
        if !self.parts.rigs.iter().any(|r| &r.id == rig) {
            return Err(Error::UnknownRig { rig: rig.clone() });
        }
        let bead = self
            .parts
            .store
            .bead(id)?
            .ok_or_else(|| Error::BeadNotFound { bead: id.clone() })?;
        if bead.kind != BeadKind::Issue {
            return Err(Error::BeadNotSlingable {
                bead: id.clone(),
                state: format!("a {}", bead.kind.as_str()),
            });
        }
        if bead.status != BeadStatus::Open {
            return Err(Error::BeadNotSlingable {
                bead: id.clone(),
                state: bead.status.as_str().to_owned(),
            });
        }
        Ok(bead)
    }

    /// Hooks `bead` to a new polecat on `rig` (one transaction: the bead `in_progress`,
    /// the polecat `working` with a fresh heartbeat, so the stale rule leaves it alone
    /// while it boots) and starts the dispatch in a spawned task.
    fn dispatch(
        &mut self,
        myself: &ActorRef<TownMsg>,
        mut bead: BeadRecord,
        rig: RigId,
    ) -> Result<Slung> {
        let store = &self.parts.store;
        let now = self.parts.clock.now_ms();
        let seq = store
            .kv_get(POLECAT_SEQ_KEY)?
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        store.kv_set(POLECAT_SEQ_KEY, &seq.to_string())?;
        let polecat = AgentId::new(format!("polecat-{seq}"))?;
        let branch = format!("gt/{polecat}/{}", bead.id);
        let spec = AgentSpec::worker(
            polecat.clone(),
            Role::Polecat,
            &self.mayor.model,
            &self.mayor.small_model,
        )
        .with_rig(rig.clone())
        .with_branch(&branch)
        .with_hook(bead.id.clone());
        bead.status = BeadStatus::InProgress;
        bead.assignee = Some(polecat.clone());
        bead.rig = Some(rig.clone());
        bead.branch = Some(branch.clone());
        bead.updated_ms = now;
        let mut agent =
            AgentRecord::with_status(polecat.clone(), Role::Polecat, AgentStatus::Working);
        agent.hook = Some(bead.id.to_string());
        agent.heartbeat_ms = Some(now);
        agent.last_activity_ms = Some(now);
        store.upsert_agent(&agent)?;
        store.apply_reconciled(None, &[Action::PutBead(bead.clone())])?;
        store.register_entry(&spec.registry_entry())?;
        let prompt = bead_prompt(&self.parts.town, &spec, &bead);
        tokio::spawn(run_dispatch(
            myself.clone(),
            self.parts.clone(),
            spec,
            prompt,
        ));
        // A working polecat is active work: the alarm's 5 s cadence starts now, not at
        // the end of an idle one.
        self.hurry_tick(myself);
        Ok(Slung {
            bead: bead.id,
            rig,
            polecat,
            branch,
        })
    }

    /// What the reconciler asked for on this tick.
    pub(super) fn on_effects(&mut self, myself: &ActorRef<TownMsg>, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Dispatch { bead, .. } => self.redispatch(myself, &bead),
                Effect::IdleExit { agent } => {
                    if let Some(c) = &self.container {
                        let _ = c.cast(ContainerMsg::ExitAgent { agent });
                    }
                }
            }
        }
    }

    /// A retry after a failed dispatch: the bead is open again, on the rig it was slung to.
    fn redispatch(&mut self, myself: &ActorRef<TownMsg>, id: &gastown_core::BeadId) {
        let bead = match self.parts.store.bead(id) {
            Ok(Some(bead)) => bead,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(bead = %id, error = %e, "reading a bead to re-dispatch");
                return;
            }
        };
        if bead.kind != BeadKind::Issue {
            // A merge request waits for the rig's refinery; this town does not dispatch
            // reviews yet (`ARCHITECTURE.md`, *Workers and the reconciler*).
            tracing::debug!(bead = %id, "merge request open for the rig's refinery");
            return;
        }
        let Some(rig) = bead.rig.clone() else {
            return;
        };
        if bead.status != BeadStatus::Open || self.shutting_down {
            return;
        }
        if let Err(e) = self.dispatch(myself, bead, rig) {
            tracing::warn!(bead = %id, error = %e, "re-dispatching a bead");
        }
    }
}

/// The prompt a polecat gets for its bead.
fn bead_prompt(town: &gastown_core::TownId, spec: &AgentSpec, bead: &BeadRecord) -> String {
    let rig = spec.rig.as_ref().map(|r| r.as_str()).unwrap_or("");
    let branch = spec.branch.as_deref().unwrap_or("");
    format!(
        "You are {polecat}, a polecat of town {town}. Your bead is {id}: {title}\n\n{body}\n\n\
         You are in your own worktree of rig {rig}, on branch {branch}. Do the work here, then \
         commit it on this branch with git. Do not push and do not switch branches.",
        polecat = spec.id,
        id = bead.id,
        title = bead.title,
        body = bead.body,
    )
}

/// Starts the polecat, then sends it its bead as a real turn. A failure is queued for the
/// reconciler: after the prompt was sent (a timeout may hide an accepted prompt) the agent
/// stays `working` and the stale-heartbeat rule cleans up (Kilo Gastown PR #3151); before,
/// the dispatch counts as failed and is retried — unless it can never succeed (the bead's
/// branch already exists in the rig), which fails the bead at once.
async fn run_dispatch(
    me: ActorRef<TownMsg>,
    parts: std::sync::Arc<crate::context::TownParts>,
    spec: AgentSpec,
    prompt: String,
) {
    let agent = spec.id.clone();
    let bead = spec
        .hook
        .clone()
        .expect("a dispatched polecat holds its bead");
    let started = Error::from_call(
        me.call(
            |reply| TownMsg::StartAgent {
                spec: spec.clone(),
                reply,
            },
            None,
        )
        .await,
        "town",
    );
    let failure = match started {
        Ok(_) => {
            let sent = Error::from_call(
                me.call(
                    |reply| TownMsg::AgentSession {
                        agent: agent.clone(),
                        request: SessionRequest::Prompt {
                            text: prompt,
                            reply,
                        },
                    },
                    None,
                )
                .await,
                "town",
            );
            match sent {
                Ok(_) => return,
                Err(e) => Some((e, prompt_may_be_accepted as fn(&Error) -> bool)),
            }
        }
        Err(e) => Some((e, never_accepted as fn(&Error) -> bool)),
    };
    let Some((error, may_be_accepted)) = failure else {
        return;
    };
    if matches!(error, Error::Stopped | Error::Unreachable { .. }) {
        // The town is going away; the bead stays hooked and the registry brings the
        // polecat back with it.
        return;
    }
    let message = error.to_string();
    tracing::warn!(agent = %agent, bead = %bead, error = %message, "dispatch failed");
    let store = &parts.store;
    let result = if message.contains(crate::phases::BRANCH_EXISTS) {
        fail_for_good(store, &bead, &agent, &message)
    } else {
        store
            .enqueue(&ReconcileEvent::DispatchFailed {
                bead,
                agent: agent.clone(),
                error: message,
                maybe_accepted: may_be_accepted(&error),
            })
            .map(|_| ())
    };
    if let Err(e) = result {
        tracing::warn!(agent = %agent, error = %e, "recording a failed dispatch");
    }
    // A polecat whose dispatch failed has nothing to do: stop it now, not after its idle
    // window.
    let _ = me.cast(TownMsg::ExitAgent { agent });
}

/// A dispatch that no retry can fix: the bead is `failed` with the error, the polecat
/// unhooked and `idle` (one transaction).
fn fail_for_good(
    store: &gastown_core::TownStore,
    bead: &gastown_core::BeadId,
    agent: &AgentId,
    message: &str,
) -> gastown_core::Result<()> {
    let Some(mut record) = store.bead(bead)? else {
        return Ok(());
    };
    record.status = BeadStatus::Failed;
    record.assignee = None;
    record.last_error = Some(message.to_owned());
    store.apply_reconciled(
        None,
        &[
            Action::PutBead(record),
            Action::SetHook {
                agent: agent.clone(),
                hook: None,
            },
            Action::SetAgentStatus {
                agent: agent.clone(),
                status: AgentStatus::Idle,
            },
        ],
    )
}

/// A start that failed never reached the session.
fn never_accepted(_: &Error) -> bool {
    false
}

/// A prompt that failed on the way may have been accepted when it timed out or the
/// connection broke with no answer (the request had left); a refusal the SDK server
/// answered with a status was not.
fn prompt_may_be_accepted(error: &Error) -> bool {
    matches!(
        error,
        Error::Core(gastown_core::Error::Sdk {
            timed_out: true,
            ..
        }) | Error::Core(gastown_core::Error::Sdk { status: None, .. })
    )
}
